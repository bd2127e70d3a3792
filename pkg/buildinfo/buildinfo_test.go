package buildinfo

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadPrefersLdflags(t *testing.T) {
	Version, Commit, Date = "v9.9.9", "abc", "2026-01-01T00:00:00Z"
	t.Cleanup(func() { Version, Commit, Date = "", "", "" })
	i := read(func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "def"}, {Key: "vcs.modified", Value: "true"}}}, true
	})
	if i.Version != "v9.9.9" || i.Commit != "abc" || i.Date != "2026-01-01T00:00:00Z" || i.Dirty {
		t.Fatalf("got %+v", i)
	}
}

func TestReadFallsBackToVCS(t *testing.T) {
	i := read(func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-02-03T04:05:06Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	})
	if i.Version != "dev" || i.Commit != "0123456789abcdef" || i.Date != "2026-02-03T04:05:06Z" || !i.Dirty {
		t.Fatalf("got %+v", i)
	}
	i = read(func() (*debug.BuildInfo, bool) { return nil, false })
	if i.Version != "dev" || i.Commit != "unknown" || i.Date != "unknown" {
		t.Fatalf("without build info: %+v", i)
	}
}

func TestPrintIfAsked(t *testing.T) {
	var b bytes.Buffer
	if PrintIfAsked("x", []string{"serve"}, &b) || PrintIfAsked("x", nil, &b) || b.Len() != 0 {
		t.Fatal("printed without --version")
	}
	if !PrintIfAsked("ingest", []string{"--version"}, &b) || !strings.HasPrefix(b.String(), "ingest ") || !strings.Contains(b.String(), "commit ") {
		t.Fatalf("--version printed %q", b.String())
	}
}
