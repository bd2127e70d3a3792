// Package contracts embeds copies of the files in ../shared/contracts that the
// product relies on: the core schema, the golden messages and the upstream
// examples. Simulators load fixtures from here, migrations apply the schema,
// and tests use them as golden data. TestCopiesMatchShared fails when the
// copies drift from the shared originals.
package contracts

import (
	"embed"
	"io/fs"
)

//go:embed c2s diretrix workapi message db
var files embed.FS

// FS returns the embedded contract files, rooted like ../shared/contracts.
func FS() fs.FS { return files }

// Read returns one embedded file, e.g. Read("workapi/cpf.json"). It panics on
// a missing name because the set of files is fixed at build time.
func Read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("contracts: " + err.Error())
	}
	return b
}
