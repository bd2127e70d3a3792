// Command resolver turns a received lead into the person(s) it is: it finds
// the CPF behind the lead's phone and email, in the product's own records
// first and then in Diretrix.
package main

import (
	"os"

	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/services/resolver/service"
)

func main() {
	os.Exit(platform.Main(service.Service))
}
