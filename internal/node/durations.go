package node

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Durations: no negative value anywhere, whether loaded or built in code
// (explicit zeros are zeros.go's).

// eachLeaf calls fn with the YAML path and the value of every field below
// v (a struct) that is neither a struct nor a list of structs, named as a
// document names it: keys from the yaml tags, list items as [i]. The checks
// of durations and explicit zeros (zeros.go) walk Config through it.
func eachLeaf(v reflect.Value, path string, fn func(path string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		p, fv := join(path, name), v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			eachLeaf(fv, p, fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := range fv.Len() {
				eachLeaf(fv.Index(j), fmt.Sprintf("%s[%d]", p, j), fn)
			}
		default:
			fn(p, fv)
		}
	}
}

// negativeDurations reports every negative duration of c (which may have
// been built in code rather than loaded).
func negativeDurations(c *Config, bad func(field, format string, args ...any)) {
	eachLeaf(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) {
		if c.Broker.Kind == "kafka" && strings.HasPrefix(path, "broker.kafka.") {
			return // kafka.Config.Validate names these itself
		}
		if v.Type() == durationType && v.Int() < 0 {
			bad(path, "must not be negative, got %s", time.Duration(v.Int()))
		}
	})
}
