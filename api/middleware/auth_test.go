package middleware_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api/middleware"
)

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct {
		in, token string
		err       error
	}{
		{"Bearer abc", "abc", nil},
		{"bearer a.b-c_d~e+f/g==", "a.b-c_d~e+f/g==", nil},
		{"BEARER  spaced", "spaced", nil},
		{"", "", middleware.ErrNoCredential},
		{"Bearer", "", middleware.ErrMalformedCredential},
		{"Bearer ", "", middleware.ErrMalformedCredential},
		{"Basic abc", "", middleware.ErrMalformedCredential},
		{"Bearer a b", "", middleware.ErrMalformedCredential},
		{"Bearer a=b", "", middleware.ErrMalformedCredential},
		{"Bearer ==", "", middleware.ErrMalformedCredential},
		{"Bearer ab\x00", "", middleware.ErrMalformedCredential},
		{"Bearer " + strings.Repeat("a", 8<<10+1), "", middleware.ErrMalformedCredential},
	} {
		tok, err := middleware.ParseBearer(tc.in)
		if tok != tc.token || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ParseBearer(%.20q) = %q, %v; want %q, %v", tc.in, tok, err, tc.token, tc.err)
		}
	}
}

// FuzzParseBearer: the parser never panics, accepts only b64token
// characters, and what it accepts is the header's tail.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer a==", "Basic x", "Bearer a b", "Bearer =", "Bearer \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := middleware.ParseBearer(h)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			return
		}
		if tok == "" || !strings.HasSuffix(h, tok) || len(tok) > 8<<10 {
			t.Fatalf("ParseBearer(%q) = %q", h, tok)
		}
		if strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=") != "" {
			t.Fatalf("ParseBearer(%q) accepted %q", h, tok)
		}
		if i := strings.IndexByte(tok, '='); i == 0 || i > 0 && strings.Trim(tok[i:], "=") != "" {
			t.Fatalf("ParseBearer(%q) accepted padding inside %q", h, tok)
		}
	})
}

func TestAPIKeysRefuseBadHashes(t *testing.T) {
	for _, kh := range []middleware.APIKeyHash{
		{Principal: "", SHA256: strings.Repeat("ab", 32)},
		{Principal: "a", SHA256: "abc"},
		{Principal: "a", SHA256: strings.Repeat("zz", 32)},
	} {
		if _, err := middleware.NewAPIKeys([]middleware.APIKeyHash{kh}); err == nil {
			t.Errorf("%+v accepted", kh)
		}
	}
}

// One key names one principal: the same hash for two principals is a
// configuration error, not a coin toss at every request. The same hash
// twice for one principal is harmless.
func TestAPIKeysOneKeyOnePrincipal(t *testing.T) {
	h := strings.Repeat("ab", 32)
	if _, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "a", SHA256: h}, {Principal: "b", SHA256: h}}); err == nil {
		t.Error("one key for two principals accepted")
	}
	if _, err := middleware.NewAPIKeys([]middleware.APIKeyHash{{Principal: "a", SHA256: h}, {Principal: "a", SHA256: strings.ToUpper(h)}}); err != nil {
		t.Errorf("a repeated key of one principal refused: %v", err)
	}
}
