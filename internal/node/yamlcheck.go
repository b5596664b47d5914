package node

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file checks a YAML document against Config before it is decoded, so
// that every error names the YAML path an operator wrote
// ("broker.kafka.brokerz: unknown field; did you mean "brokers"?") rather
// than a Go type, as yaml's own KnownFields errors do ("field brokerz not
// found in type kafka.Config").

// decodeChecked decodes data onto c: it walks the document against c's yaml
// tags, reporting every unknown key and every value of the wrong type with
// its line and path, and decodes only a document that passed. Fields the
// document does not mention keep the values c had.
func decodeChecked(data []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // empty document
	}
	root := doc.Content[0]
	var ck checker
	ck.node(root, reflect.TypeOf(c).Elem(), "")
	if len(ck.errs) > 0 {
		return errors.Join(ck.errs...)
	}
	return root.Decode(c)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checker collects the errors of one document.
type checker struct {
	errs []error
	// merging holds the mappings whose merge keys are being followed: a
	// mapping that merges itself (&r {<<: *r}) would never end.
	merging map[*yaml.Node]bool
}

func (ck *checker) fail(n *yaml.Node, path, msg string) {
	ck.errs = append(ck.errs, nodeError(n, path, msg))
}

// node checks n against the Go type t at YAML path path. It descends by
// t's structure, which is finite, so only merge keys need a cycle check.
func (ck *checker) node(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return // as if absent: the field keeps its value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		ck.leaf(n, t, path)
		return
	}
	switch {
	case t.Kind() == reflect.Struct:
		ck.structure(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ck.fail(n, path, "must be a list")
			return
		}
		for i, item := range n.Content {
			ck.node(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			ck.fail(n, path, "must be a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			ck.node(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	default:
		ck.leaf(n, t, path)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (ck *checker) structure(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		what := "must be a mapping"
		if path == "" {
			what = "the configuration must be a mapping of fields (addr, broker, routes, ...)"
		}
		ck.fail(n, path, what)
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if key.Value == "<<" && key.ShortTag() == "!!merge" {
			// A merge key (<<: *defaults) lays a mapping, or a list of them,
			// into this one: check them as this struct.
			if ck.merging[n] {
				ck.fail(key, path, "a merge key includes the mapping it is in")
				return
			}
			if ck.merging == nil {
				ck.merging = make(map[*yaml.Node]bool)
			}
			ck.merging[n] = true
			if value.Kind == yaml.AliasNode && value.Alias != nil {
				value = value.Alias
			}
			if value.Kind == yaml.SequenceNode {
				for _, m := range value.Content {
					ck.node(m, t, path)
				}
			} else {
				ck.node(value, t, path)
			}
			delete(ck.merging, n)
			continue
		}
		f, ok := fields[key.Value]
		if !ok {
			msg := "unknown field"
			if s := closest(key.Value, slices.Sorted(maps.Keys(fields))); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			ck.fail(key, join(path, key.Value), msg)
			continue
		}
		ck.node(value, f.Type, join(path, key.Value))
	}
}

// yamlFields maps the YAML keys of struct type t to its fields, as yaml.v3
// names them: the tag's name, else the lower-cased field name; "-" and
// unexported fields are not keys.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			maps.Copy(m, yamlFields(f.Type))
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

// leaf decodes n into a new value of t and reports a failure in the
// operator's terms: what the value should have been, not which Go type
// refused it.
func (ck *checker) leaf(n *yaml.Node, t reflect.Type, path string) {
	if t == reflect.TypeFor[time.Duration]() && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Value != "0" {
		// yaml decodes 10 into 10ns: surely not what was meant.
		ck.fail(n, path, fmt.Sprintf("%s has no unit: write e.g. %ss or %sms", n.Value, n.Value, n.Value))
		return
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		if v.Elem().IsZero() && (t.Kind() == reflect.Int || t.Kind() == reflect.Int64) {
			if why := zeroRefused(path); why != "" {
				ck.fail(n, path, why)
			}
		}
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		ck.fail(n, path, err.Error())
		return
	}
	got := "a mapping"
	switch n.Kind {
	case yaml.ScalarNode:
		got = fmt.Sprintf("%q", n.Value)
	case yaml.SequenceNode:
		got = "a list"
	}
	ck.fail(n, path, fmt.Sprintf("%s is not %s", got, describe(t)))
}

// describe names what a value of t looks like in YAML.
func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration (e.g. 10s, 1m30s)"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	}
	return "valid here"
}

func nodeError(n *yaml.Node, path, msg string) error {
	if path == "" {
		return fmt.Errorf("line %d: %s", n.Line, msg)
	}
	return fmt.Errorf("line %d: %s: %s", n.Line, path, msg)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// closest returns the candidate nearest to key by edit distance, if it is
// near enough to be a likely typo (at most a third of the key's length,
// and at least one edit); "" otherwise.
func closest(key string, candidates []string) string {
	best, bestD := "", len(key)/3
	if bestD < 1 {
		bestD = 1
	}
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(key), c); d <= bestD && (best == "" || d < editDistance(strings.ToLower(key), best)) {
			best = c
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and transpositions of
// adjacent bytes ("levle" is one edit from "level").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
