// Command enricher pays the Work API for each resolved CPF (reusing stored
// payloads first) and writes the person into core.*.
package main

import (
	"os"

	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/services/enricher/service"
)

func main() {
	os.Exit(platform.Main(service.Service))
}
