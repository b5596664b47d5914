package node

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// An explicit 0 (in the file, the environment or a flag) on a field whose
// zero SetDefaults replaces by a default would silently become that default:
// --drain-timeout 0 used to mean 10s. Such a zero is refused, naming the
// field and its default. The fields whose 0 means something keep their
// defaults in base() instead and accept it: shutdown.readiness_delay and
// shutdown.drain_timeout (0: none), http.max_in_flight and
// routes[].max_in_flight (0: no limit), broker.wait_for (0: wait for ever).

// zeroHints adds what an operator who wrote 0 probably wanted.
var zeroHints = map[string]string{
	"routes[].wait": "for a 202 at once, use mode: async",
}

// defaultedZeros maps the YAML path of every numeric field (durations,
// sizes, counts) whose zero SetDefaults replaces to the default it gets;
// slice items are written [] (routes[].wait).
var defaultedZeros = sync.OnceValue(func() map[string]string {
	out := make(map[string]string)
	var cluster Config
	cluster.Cluster.Enabled = true
	cluster.Routes = []RouteConfig{{}}
	cluster.SetDefaults()
	collectNonZero(reflect.ValueOf(cluster), out)
	// Their values are copied from results and idempotency, not defaulted.
	delete(out, "cluster.redis.result_ttl")
	delete(out, "cluster.redis.idempotency_ttl")
	var single Config
	single.Routes = []RouteConfig{{}}
	single.SetDefaults()
	single.Broker.Kafka.SetDefaults()
	single.Broker.RabbitMQ.SetDefaults()
	collectNonZero(reflect.ValueOf(single), out) // outside cluster mode's values win
	if single.Results.TTL != cluster.Results.TTL {
		out["results.ttl"] += ", " + shortDuration(cluster.Results.TTL) + " in cluster mode"
	}
	// Defaults that are a rule rather than a value.
	out["idempotency.ttl"] = "results.ttl"
	out["routes[].max_body"] = "http.max_body"
	out["routes[].max_wait"] = "http.max_wait"
	out["auth.rate_limit.per"], out["routes[].rate_limit.per"] = "1s", "1s"
	out["auth.rate_limit.burst"], out["routes[].rate_limit.burst"] = "rate", "rate"
	return out
})

var durationType = reflect.TypeFor[time.Duration]()

// collectNonZero records the numeric leaves of v that are not zero, list
// items written [] (routes[].wait).
func collectNonZero(v reflect.Value, out map[string]string) {
	eachLeaf(v, "", func(path string, v reflect.Value) {
		if k := v.Kind(); k != reflect.Int && k != reflect.Int64 || v.IsZero() {
			return
		}
		path = itemIndex.ReplaceAllString(path, "[]")
		if v.Type() == durationType {
			out[path] = shortDuration(time.Duration(v.Int()))
		} else if s, ok := v.Interface().(fmt.Stringer); ok {
			out[path] = s.String()
		} else {
			out[path] = strconv.FormatInt(v.Int(), 10)
		}
	})
}

var itemIndex = regexp.MustCompile(`\[\d+\]`)

// zeroRefused returns why an explicit zero at path is refused, or "" when
// 0 is accepted there.
func zeroRefused(path string) string {
	generic := itemIndex.ReplaceAllString(path, "[]")
	def, ok := defaultedZeros()[generic]
	if !ok {
		return ""
	}
	msg := fmt.Sprintf("0 is not a valid value (it would become the default, %s): leave the field out for the default, or set a positive value", def)
	if h := zeroHints[generic]; h != "" {
		msg += "; " + h
	}
	return msg
}

// settingPath returns the YAML path of the field a flag sets.
func settingPath(s setting) string {
	var c Config
	target := reflect.ValueOf(s.value(&c)).Pointer()
	found := ""
	eachLeaf(reflect.ValueOf(&c).Elem(), "", func(path string, v reflect.Value) {
		if found == "" && v.Addr().Pointer() == target {
			found = path
		}
	})
	return found
}

// zeroSetting returns the error for a flag or environment value that sets
// s's field to a zero refused there, or nil.
func zeroSetting(s setting, v string) error {
	var probe Config
	if err := s.value(&probe).Set(v); err != nil {
		return err
	}
	if !reflect.ValueOf(s.value(&probe)).Elem().IsZero() {
		return nil
	}
	if why := zeroRefused(settingPath(s)); why != "" {
		return fmt.Errorf("%s: %s", settingPath(s), why)
	}
	return nil
}
