package node

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Durations: no negative value anywhere, whether loaded or built in code
// (explicit zeros are zeros.go's).

// walkDurations calls fn with the YAML path and a pointer of every
// time.Duration field reachable from v (a struct), routes[i] included.
func walkDurations(v reflect.Value, path string, fn func(path string, d *time.Duration)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		p := join(path, name)
		fv := v.Field(i)
		switch {
		case f.Type == durationType:
			fn(p, fv.Addr().Interface().(*time.Duration))
		case f.Type.Kind() == reflect.Struct:
			walkDurations(fv, p, fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := range fv.Len() {
				walkDurations(fv.Index(j), fmt.Sprintf("%s[%d]", p, j), fn)
			}
		}
	}
}

// negativeDurations reports every negative duration of c (which may have
// been built in code rather than loaded).
func negativeDurations(c *Config, bad func(field, format string, args ...any)) {
	walkDurations(reflect.ValueOf(c).Elem(), "", func(path string, d *time.Duration) {
		if c.Broker.Kind == "kafka" && strings.HasPrefix(path, "broker.kafka.") {
			return // kafka.Config.Validate names these itself
		}
		if *d < 0 {
			bad(path, "must not be negative, got %s", *d)
		}
	})
}
