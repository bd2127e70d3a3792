// Command ingest is the public edge: C2S webhooks, the Make.com trigger and
// the query and admin API.
package main

import (
	"os"

	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/services/ingest/service"
)

func main() {
	os.Exit(platform.Main(service.Service))
}
