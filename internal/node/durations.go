package node

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
)

// Durations: no negative value anywhere, and no explicit 0 where
// SetDefaults would silently replace it by the default. An operator who
// writes `drain_timeout: 0` or `--drain-timeout 0` means something (no
// drain), and getting 10s instead is a surprise found during an incident;
// where 0 has a meaning of its own (broker.wait_for: for ever,
// shutdown.readiness_delay: none, broker.kafka.batch_timeout: no batching
// delay) it is kept and documented.

var durationType = reflect.TypeFor[time.Duration]()

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

// generic turns routes[3].wait into routes[].wait.
func generic(path string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '[')
		if i < 0 {
			b.WriteString(path)
			return b.String()
		}
		j := strings.IndexByte(path[i:], ']')
		if j < 0 {
			b.WriteString(path)
			return b.String()
		}
		b.WriteString(path[:i+1])
		b.WriteByte(']')
		path = path[i+j+1:]
	}
}

// zeroDefaults maps the generic path of every duration whose 0 SetDefaults
// replaces to the default it gets (shown in the error). It is computed from
// SetDefaults itself, so a new field is covered without a list to keep.
var zeroDefaults = sync.OnceValue(func() map[string]time.Duration {
	m := make(map[string]time.Duration)
	for _, kind := range []string{"kafka", "rabbitmq"} {
		var c Config
		c.Node = "n"
		c.Broker.Kind = kind
		c.Cluster.Enabled = true
		c.Routes = []RouteConfig{{Path: "/p", Destination: "d"}}
		c.SetDefaults()
		walkDurations(reflect.ValueOf(&c).Elem(), "", func(path string, d *time.Duration) {
			if *d != 0 {
				m[generic(path)] = *d
			}
		})
	}
	// Derived from another field rather than defaulted on its own.
	delete(m, "cluster.redis.result_ttl")
	delete(m, "cluster.redis.idempotency_ttl")
	return m
})

// checkDuration reports what is wrong with d set explicitly at path, or "".
func checkDuration(path string, d time.Duration) string {
	switch {
	case d < 0:
		return "must not be negative"
	case d == 0:
		if def, ok := zeroDefaults()[generic(path)]; ok {
			return fmt.Sprintf("0 is not allowed: leave it out for the default (%s), or give a positive duration", def)
		}
	}
	return ""
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

// flagDurationError checks a duration flag or variable s set to v: what
// the setting changes in a defaulted Config is explicit.
func flagDurationError(s setting, v string) error {
	c := Embedded()
	c.SetDefaults()
	before := make(map[string]time.Duration)
	walkDurations(reflect.ValueOf(&c).Elem(), "", func(path string, d *time.Duration) { before[path] = *d })
	if err := s.value(&c).Set(v); err != nil {
		return err
	}
	var msg string
	walkDurations(reflect.ValueOf(&c).Elem(), "", func(path string, d *time.Duration) {
		if msg == "" && *d != before[path] {
			msg = checkDuration(path, *d)
		}
	})
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}
