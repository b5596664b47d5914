package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/syncgate/syncgate"

// pkg is what go list says of one package.
type pkg struct {
	ImportPath   string
	Dir          string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string // direct, non-test
	Deps         []string // transitive, non-test
	TestImports  []string
	XTestImports []string
}

// rule forbids the packages under from importing anything that matches
// one of forbidden (an import path, or a prefix ending in "/..."), in their
// code and in their tests. Deep rules apply to every package the code links
// in, not only to its direct imports.
type rule struct {
	under       []string
	except      []string // packages under under that the rule leaves out
	forbidden   []string
	testAllowed []string // forbidden imports the tests may still use
	deep        bool
	why         string
}

var sdks = []string{
	"github.com/segmentio/kafka-go/...", "github.com/rabbitmq/amqp091-go/...",
	"github.com/redis/go-redis/...", "github.com/go-chi/chi/...",
}

var rules = []rule{
	{
		under: []string{"gateway/..."}, except: []string{"gateway/instrument"},
		forbidden: append([]string{"net/http", "github.com/prometheus/...", module + "/correlation/redisstate/..."}, sdks...), deep: true,
		why: "the use case knows no HTTP, no broker SDK, no Redis and no metrics library (decorators in gateway/instrument do); its tests run on the in-memory cluster state",
	},
	{
		under: []string{"gateway/instrument"}, forbidden: append([]string{"net/http"}, sdks...),
		why: "metrics decorators wrap the use case's ports, nothing more",
	},
	{
		under: []string{"brokers/..."}, forbidden: []string{module + "/gateway/...", module + "/correlation/...", module + "/api/...", module + "/cmd/...", module + "/loadtest/..."},
		why: "backends implement the broker abstraction and know nothing of the gateway",
	},
	{
		under: []string{"correlation/..."}, forbidden: []string{module + "/gateway/...", module + "/api/...", module + "/cmd/...", module + "/loadtest/..."},
		why: "correlation provides ids, the registry and stores to the gateway, not the other way round",
	},
	{
		under: []string{"api/..."}, forbidden: append([]string{module + "/brokers/kafka/...", module + "/brokers/rabbitmq/...", module + "/brokers/memory/...", module + "/correlation/redisstate/...", module + "/ratelimit/redislimit/...", module + "/cmd/...", module + "/loadtest/..."}, sdks[:3]...),
		testAllowed: []string{module + "/brokers/memory"}, // the in-memory stand-in, for end-to-end API tests
		why:         "the HTTP surface talks to the use case, never to a backend",
	},
	{
		under: []string{"ratelimit/..."}, except: []string{"ratelimit/redislimit"},
		forbidden:   append([]string{module + "/api/...", module + "/gateway/...", module + "/correlation/...", module + "/ratelimit/redislimit"}, sdks...),
		testAllowed: []string{module + "/ratelimit/redislimit"},
		why:         "the rate limit port and its in-memory limiter know no HTTP layer and no Redis; ratelimit/redislimit holds the Redis one",
	},
	{
		under: []string{"loadtest/..."}, forbidden: []string{module + "/gateway/...", module + "/api/...", module + "/correlation/..."},
		why: "the load tool drives a node from outside, through HTTP and the brokers",
	},
	{
		under: []string{"..."}, forbidden: []string{module + "/cmd/..."},
		why: "cmd/ holds programs; nothing imports them",
	},
}

// known lists the imports that break a rule today, each with the issue that
// removes it. A new entry needs a reason as good; a fixed one must go (the
// test fails on a stale entry).
var known = map[string]string{
	"loadtest/scenario -> correlation": "the raw baselines hand replies to requests through the gateway's own registry, so that comparing them with a node measures only the rest of the gateway",
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if !matchAny(rel, r.under) || slices.Contains(r.except, rel) {
				continue
			}
			check := func(kind string, imports []string) {
				for _, imp := range imports {
					if !matchAny(imp, r.forbidden) || imp == p.ImportPath || kind != "" && matchAny(imp, r.testAllowed) {
						continue
					}
					key := rel + kind + " -> " + strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
					if _, ok := known[key]; ok {
						seen[key] = true
						continue
					}
					t.Errorf("%s imports %s: %s", rel+kind, imp, r.why)
				}
			}
			if r.deep {
				check("", p.Deps)
			} else {
				check("", p.Imports)
			}
			check(" [test]", append(slices.Clone(p.TestImports), p.XTestImports...))
		}
	}
	for key, why := range known {
		if !seen[key] {
			t.Errorf("known exception %q (%s) no longer occurs: delete it from known", key, why)
		}
	}
}

// matchAny reports whether path matches one of patterns: an exact path, or
// a prefix ending in "/..." (which matches the prefix itself too); a
// pattern without the module's host is relative to the module, except
// standard library paths.
func matchAny(path string, patterns []string) bool {
	for _, p := range patterns {
		if p == "..." {
			return true
		}
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
			continue
		}
		if path == p {
			return true
		}
	}
	return false
}

func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,GoFiles,TestGoFiles,XTestGoFiles,Imports,Deps,TestImports,XTestImports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
		// go test caches a passing result keyed by the files the test
		// opened or stat'ed; go list reads them in a child process, which
		// the cache does not see. Stat them here, so that an edited import
		// runs the test again instead of replaying a stale pass.
		for _, f := range slices.Concat(p.GoFiles, p.TestGoFiles, p.XTestGoFiles) {
			_, _ = os.Stat(filepath.Join(p.Dir, f))
		}
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; is the test run inside the module?", len(pkgs))
	}
	return pkgs
}
