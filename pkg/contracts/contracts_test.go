package contracts

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The shared contracts are the newer word: when they are present beside the
// repository, the embedded copies must be byte-identical.
func TestCopiesMatchShared(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "contracts")
	if _, err := os.Stat(shared); err != nil {
		t.Logf("no shared contracts at %s; checking embedded files only", shared)
	}
	n := 0
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		ours := Read(path)
		if len(ours) == 0 {
			t.Errorf("%s is empty", path)
		}
		theirs, err := os.ReadFile(filepath.Join(shared, path))
		if err == nil && !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs from ../shared/contracts; copy it again", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 19 {
		t.Fatalf("expected the contract files to be embedded, found %d", n)
	}
}
