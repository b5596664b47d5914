package clustertest

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/redistest"
)

// binary is the syncgate command every test runs as its nodes, built once
// by TestMain.
var binary string

func TestMain(m *testing.M) {
	// go-redis's own lines (refused dials while a test's Redis restarts) go
	// to slog at debug, as the nodes send theirs, not to stderr.
	redisstate.SetLibraryLogger(slog.Default())
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "syncgate-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "syncgate")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		// The nodes are checked for data races too, not only this process.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/syncgate/syncgate/cmd/syncgate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "clustertest: go build ./cmd/syncgate:", err)
		return 1
	}
	defer redistest.Stop()
	return m.Run()
}
