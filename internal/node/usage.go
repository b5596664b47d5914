package node

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// defaultText overrides the default --help shows for settings whose default
// is not a value but a rule.
var defaultText = map[string]string{
	"node":            "hostname plus a random suffix",
	"reply-to":        "syncgate.reply.<node>",
	"idempotency-ttl": "result-ttl",
}

// printUsage writes --help: every flag with its type, its environment
// variable and its default, taken from the defaults the node applies so
// that the two cannot drift apart.
func printUsage(w io.Writer) {
	d := base()
	d.SetDefaults()
	d.Broker.RabbitMQ.SetDefaults() // defaults of the sections the kind selects
	d.Cluster.Redis.SetDefaults()
	fmt.Fprint(w, `Usage: syncgate [flags]
       syncgate version

Runs a syncgate gateway node. Without --config it runs the embedded demo
configuration: memory broker and demo service on 127.0.0.1:8080.
Flags override SYNCGATE_* environment variables, which override the config
file; examples/syncgate.yaml lists every field of the file.

Flags:
  --config file
      YAML configuration file (env SYNCGATE_CONFIG; default: the embedded demo configuration)
`)
	for _, s := range settings {
		typ := typeName(s)
		if typ != "" {
			typ = " " + typ
		}
		def, ok := defaultText[s.name]
		if !ok {
			def = showDefault(s.value(&d))
		}
		extra := "env " + EnvName(s.name)
		if def != "" {
			extra += "; default " + def
		}
		fmt.Fprintf(w, "  --%s%s\n      %s (%s)\n", s.name, typ, s.usage, extra)
	}
	fmt.Fprint(w, "  --version\n      print the version and the VCS revision, and exit (same as syncgate version)\n")
	fmt.Fprint(w, "  --help\n      this text\n")
}

func showDefault(v flag.Value) string {
	switch v := v.(type) {
	case *boolValue:
		if !*v {
			return ""
		}
	case *durationValue:
		return shortDuration(time.Duration(*v))
	}
	return v.String()
}

// shortDuration writes 10m rather than time.Duration's 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func typeName(s setting) string {
	switch s.value(&Config{}).(type) {
	case *boolValue:
		return ""
	case *durationValue:
		return "duration"
	case *intValue:
		return "int"
	case *ByteSize:
		return "size"
	case *listValue:
		return "list"
	}
	return "string"
}

func isBool(s setting) bool {
	b, ok := s.value(&Config{}).(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagError turns an error of the flag package into one line that names the
// flag and points at --help, with the nearest flag for a misspelt one.
func flagError(err error) error {
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(err.Error(), undefined); ok {
		names := []string{"config", "version", "help"}
		for _, s := range settings {
			names = append(names, s.name)
		}
		if c := closest(name, names); c != "" {
			return fmt.Errorf("unknown flag --%s; did you mean --%s? (syncgate --help lists the flags)", name, c)
		}
		return fmt.Errorf("unknown flag --%s (syncgate --help lists the flags)", name)
	}
	return fmt.Errorf("%w (syncgate --help lists the flags)", err)
}
