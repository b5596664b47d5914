package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildVersion is what this binary knows about its own build: the module
// version and VCS revision the go command stamped into it. An operator
// needs both to tell which code a node runs (a "(devel)" version with a
// revision is a build from a checkout; "+dirty" says it had local changes).
type buildVersion struct {
	Version   string // module version, "(devel)" when built from a checkout without a tag
	Revision  string // VCS commit, "+dirty" appended when the tree had changes; "unknown" without VCS information
	GoVersion string
}

// readBuildVersion reads the build information embedded in the binary.
// `go build` in a git checkout stamps the revision; `go run`, `go test`,
// builds with -buildvcs=false and builds in a linked git worktree (which the
// go command does not recognise, golang/go#58218) do not, and the revision
// is then "unknown".
func readBuildVersion() buildVersion {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionOf(bi)
}

// versionOf extracts a buildVersion from build information (nil: none).
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		v.Revision = revision
		if modified {
			v.Revision += "+dirty"
		}
	}
	return v
}

// String is the one line `syncgate version` prints.
func (v buildVersion) String() string {
	return fmt.Sprintf("syncgate %s revision %s %s %s/%s", v.Version, v.Revision, v.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// isVersionRequest tells whether args ask for the version instead of a
// node: the command `syncgate version` or the flag --version (-version).
func isVersionRequest(args []string) bool {
	if len(args) > 0 && args[0] == "version" {
		return true
	}
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version":
			return true
		}
	}
	return false
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, readBuildVersion())
	return err
}

// buildInfoGauge is syncgate_build_info, the usual constant 1 whose labels
// say which build a node runs, so dashboards can join any series on it.
func buildInfoGauge(v buildVersion) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "syncgate_build_info",
		Help: "Always 1; the labels name the build of this node: module version, VCS revision (+dirty) and Go version.",
		ConstLabels: prometheus.Labels{
			"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion,
		},
	})
	g.Set(1)
	return g
}
