package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/gateway"
)

// parsePrefer reads the RFC 7240 preferences syncgate honours from every
// Prefer header value. Unknown or malformed preferences are ignored, as the
// RFC requires.
func parsePrefer(values []string) gateway.Preferences {
	var p gateway.Preferences
	for _, v := range values {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // parameters are not used
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch name {
			case "respond-async":
				p.RespondAsync = true
			case "wait":
				secs, err := strconv.ParseUint(val, 10, 32)
				if err == nil && secs > 0 {
					p.Wait = time.Duration(secs) * time.Second
				}
			}
		}
	}
	return p
}
