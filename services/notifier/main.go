// Command notifier posts the pt-BR summary of an enriched lead on the lead in
// C2S, exactly once per lead event.
package main

import (
	"os"

	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/services/notifier/service"
)

func main() {
	os.Exit(platform.Main(service.Service))
}
