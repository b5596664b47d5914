package node_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/internal/node"
)

// A scatter-gather route's mistakes are named by their YAML path.
func TestGatherConfigErrors(t *testing.T) {
	tests := []struct{ name, route, want string }{
		{"one part", "parts: [{name: a, destination: d}]", "routes[0].parts: a scatter-gather route needs two parts at least"},
		{"both forms", "parts: [{name: a, destination: d}, {name: b, destination: e}], destinations: [f, g]", "routes[0].destinations: give parts or destinations, not both"},
		{"with destination", "destination: x, destinations: [f, g]", "routes[0].destination: a scatter-gather route publishes to its parts' destinations"},
		{"twice the name", "parts: [{name: a, destination: d}, {name: a, destination: e}]", `routes[0].parts[1].name: "a" is named twice`},
		{"no name", "parts: [{destination: d}, {name: b, destination: e}]", `routes[0].parts[0].name: "": a name without spaces`},
		{"no destination", "parts: [{name: a}, {name: b, destination: e}]", "routes[0].parts[0].destination: required"},
		{"part timeout over the route's", "timeout: 5s, parts: [{name: a, destination: d, timeout: 6s}, {name: b, destination: e}]", "routes[0].parts[0].timeout: 6s is outside 0..the route's timeout (5s)"},
		{"unknown rule", "destinations: [d, e], gather: most", `routes[0].gather: "most" is not all, any or quorum`},
		{"quorum out of range", "destinations: [d, e], gather: quorum, quorum: 3", "routes[0].quorum: 3 is outside 1..2"},
		{"quorum without the rule", "destinations: [d, e], quorum: 1", "routes[0].quorum: only with gather: quorum"},
		{"outbox", "destinations: [d, e], outbox: true", "routes[0].outbox: not on a scatter-gather route"},
		{"too many parts", "destinations: [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16, d17, d18, d19, d20, d21, d22, d23, d24, d25, d26, d27, d28, d29, d30, d31, d32]", "routes[0].parts: 33 parts; at most 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			yaml := "routes: [{method: POST, path: /x, " + tt.route + "}]\n"
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := node.Load([]string{"--config", file}, env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
	file := filepath.Join(t.TempDir(), "ok.yaml")
	if err := os.WriteFile(file, []byte("routes: [{method: POST, path: /x, destinations: [d, e], gather: quorum, quorum: 1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := node.Load([]string{"--config", file}, env(nil), io.Discard)
	if err != nil || len(cfg.Routes[0].Destinations) != 2 {
		t.Fatalf("the shorthand: %+v, %v", cfg, err)
	}
}
