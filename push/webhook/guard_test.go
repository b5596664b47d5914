package webhook_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/push/webhook"
)

func TestCheckURL(t *testing.T) {
	g := webhook.Guard{Allow: []string{"*.example.com", "hooks.partner.net"}}
	for raw, ok := range map[string]bool{
		"https://a.example.com/cb":          true,
		"https://HOOKS.partner.net:8443/x":  true,
		"https://example.com/cb":            false, // *.example.com is subdomains only
		"https://evil.com/a.example.com":    false,
		"https://a.example.com.evil.com/cb": false,
		"ftp://a.example.com/cb":            false,
		"https://user:pw@a.example.com/cb":  false,
		"not a url at all\x7f":              false,
	} {
		_, err := g.CheckURL(raw)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", raw, err, ok)
		}
		if err != nil && !errors.Is(err, webhook.ErrRefused) {
			t.Errorf("CheckURL(%q): %v does not wrap ErrRefused", raw, err)
		}
	}
}

func TestPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "0.0.0.0": false, "100.64.0.1": false, "224.0.0.1": false,
		"::1": false, "fd00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"64:ff9b::7f00:1": false, "2002:7f00:1::": false, "198.18.0.1": false,
	} {
		if got := webhook.Public(netip.MustParseAddr(s)); got != want {
			t.Errorf("Public(%s) = %v, want %v", s, got, want)
		}
	}
}

// The client refuses to connect to a loopback receiver, whether named by
// address or by a DNS name that resolves to it, unless private addresses
// are allowed; a redirect to a host outside the patterns is refused even
// when the first URL was allowed.
func TestClientDialGuard(t *testing.T) {
	hit := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://elsewhere.invalid/cb", http.StatusFound)
			return
		}
		hit++
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, host := range []string{"127.0.0.1", "localhost"} {
		g := webhook.Guard{Allow: []string{host}}
		_, err := g.Client().Post("http://"+host+port+"/cb", "text/plain", nil)
		if !errors.Is(err, webhook.ErrRefused) {
			t.Errorf("POST to %s: %v, want ErrRefused", host, err)
		}
	}
	if hit != 0 {
		t.Fatalf("the receiver was reached %d times", hit)
	}
	g := webhook.Guard{Allow: []string{"127.0.0.1"}, AllowPrivate: true}
	resp, err := g.Client().Post(srv.URL+"/cb", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 || hit != 1 {
		t.Fatalf("with AllowPrivate: %v, %d hits", err, hit)
	}
	resp.Body.Close()
	if _, err := g.Client().Post(srv.URL+"/redirect", "text/plain", nil); !errors.Is(err, webhook.ErrRefused) {
		t.Errorf("redirect to elsewhere.invalid: %v, want ErrRefused", err)
	}
}
