// Package buildinfo says which build a binary is: version, commit and build
// date, set at link time with
//
//	go build -ldflags "-X github.com/leadflow/leadflow/pkg/buildinfo.Version=v1.2.3 \
//	  -X github.com/leadflow/leadflow/pkg/buildinfo.Commit=$(git rev-parse HEAD) \
//	  -X github.com/leadflow/leadflow/pkg/buildinfo.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// and, when they are not set, taken from the VCS stamp Go embeds
// (debug.ReadBuildInfo: vcs.revision, vcs.time, vcs.modified). Every binary
// answers --version with String.
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set with -ldflags -X (see the package comment). Empty = unknown.
var (
	Version string
	Commit  string
	Date    string
)

// Info is one build's identity.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Dirty   bool   `json:"dirty,omitempty"` // built from a modified work tree (VCS stamp)
	Go      string `json:"go"`
}

var (
	once sync.Once
	info Info
)

// Get returns the build's identity: the -ldflags values, else the VCS stamp,
// else "dev"/"unknown".
func Get() Info {
	once.Do(func() { info = read(debug.ReadBuildInfo) })
	return info
}

func read(readBuild func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: Version, Commit: Commit, Date: Date, Go: runtime.Version()}
	if bi, ok := readBuild(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.Date == "" {
					i.Date = s.Value
				}
			case "vcs.modified":
				i.Dirty = s.Value == "true" && Commit == ""
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the one-line answer to --version, e.g.
// "ingest v1.2.3 (commit 0a1b2c3, built 2026-01-02T03:04:05Z, go1.26.8)".
func String(binary string) string {
	i := Get()
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if i.Dirty {
		commit += "-dirty"
	}
	return fmt.Sprintf("%s %s (commit %s, built %s, %s)", binary, i.Version, commit, i.Date, i.Go)
}

// AskedFor reports whether args (os.Args[1:]) ask for the version only:
// "--version", "-version" or "version" alone.
func AskedFor(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		return true
	}
	return false
}

// PrintIfAsked writes String(binary) to w and returns true when args ask for
// the version; mains return (exit 0) then.
func PrintIfAsked(binary string, args []string, w io.Writer) bool {
	if !AskedFor(args) {
		return false
	}
	fmt.Fprintln(w, String(binary))
	return true
}
