package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is wrapped by the guard's refusals.
var ErrRefused = errors.New("webhook: callback refused")

// Guard decides which callback URLs a route may deliver to.
type Guard struct {
	// Allow are host patterns (path.Match syntax: "*.example.com",
	// "hooks.partner.net"); a callback's host must match one.
	Allow []string
	// AllowPrivate lets deliveries reach loopback, private, link-local
	// and other non-public addresses (tests, in-cluster receivers).
	AllowPrivate bool
	// Timeout bounds one delivery attempt (default 10 s).
	Timeout time.Duration
}

// CheckURL refuses a callback URL that is not http(s), carries
// credentials, or whose host matches no Allow pattern. Addresses are
// checked when dialled (Client).
func (g Guard) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a URL", ErrRefused, raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("%w: scheme %q (want https or http)", ErrRefused, u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: a URL with credentials", ErrRefused)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return nil, fmt.Errorf("%w: no host", ErrRefused)
	}
	for _, p := range g.Allow {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: host %q matches none of callback.allow", ErrRefused, host)
}

// Client returns the HTTP client deliveries use: every connection is
// checked on the address it dials (after DNS: a name that resolves to a
// private address is refused like the address), and every redirect's URL
// passes CheckURL again.
func (g Guard) Client() *http.Client {
	timeout := g.timeout()
	d := &net.Dialer{Timeout: timeout, Control: g.control}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		Proxy:                 nil, // a proxy would dial for us, unchecked
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return fmt.Errorf("%w: more than 5 redirects", ErrRefused)
		}
		_, err := g.CheckURL(req.URL.String())
		return err
	}}
}

// control runs on the resolved address just before connecting.
func (g Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: address %q", ErrRefused, address)
	}
	if !g.AllowPrivate && !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address (callback.allow_private)", ErrRefused, ap.Addr())
	}
	return nil
}

// nonPublic are the ranges Public refuses besides what netip classifies.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // this network
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 (embeds IPv4)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("2002::/16"),       // 6to4 (embeds IPv4)
	netip.MustParsePrefix("2001::/32"),       // Teredo (embeds IPv4)
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
}

// Public reports whether a is a globally routable unicast address: not
// loopback, private (RFC 1918, IPv6 ULA), link-local, unspecified,
// multicast, nor one of the special-purpose ranges above. IPv4-mapped IPv6
// addresses are judged as the IPv4 address they carry.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
