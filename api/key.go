package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// MaxKeyLen bounds a message key built from a request (bytes).
const MaxKeyLen = 1024

// KeyTemplate builds a route's message key from each request, so that the
// messages of one entity (an order, a customer) share a key and keep their
// order on Kafka. It is literal text with placeholders:
//
//	${params.NAME}    the path parameter NAME of the route's pattern ({NAME})
//	${headers.NAME}   the request header NAME (its first value)
//	${body#POINTER}   the JSON body's value at the RFC 6901 pointer, e.g.
//	                  ${body#/customer/id}: a string, number or boolean
//
// e.g. "order-${params.id}" or "${headers.X-Tenant}:${body#/customer/id}".
// A request that lacks a value the template names is refused (400
// message-key-missing), never keyed by accident.
type KeyTemplate struct {
	src   string
	parts []keyPart
	body  bool // a part reads the body
}

type keyPart struct {
	kind    byte // 0 literal, 'p' path parameter, 'h' header, 'b' body pointer
	text    string
	pointer []string // 'b': the pointer's reference tokens, unescaped
}

var (
	placeholderRE = regexp.MustCompile(`\$\{([^}]*)\}`)
	pathParamRE   = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)
)

// ParseKeyTemplate parses s for a route whose chi pattern is path: every
// ${params.NAME} must be a parameter of path.
func ParseKeyTemplate(s, path string) (*KeyTemplate, error) {
	if s == "" {
		return nil, errors.New("empty key template")
	}
	t := &KeyTemplate{src: s}
	params := pathParams(path)
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(s, -1) {
		if m[0] > last {
			t.parts = append(t.parts, keyPart{text: s[last:m[0]]})
		}
		last = m[1]
		ref := s[m[2]:m[3]]
		switch {
		case strings.HasPrefix(ref, "params."):
			name := strings.TrimPrefix(ref, "params.")
			if !slices.Contains(params, name) {
				return nil, fmt.Errorf("${%s}: the path %s has no parameter {%s} (it has: %s)", ref, path, name, strings.Join(params, ", "))
			}
			t.parts = append(t.parts, keyPart{kind: 'p', text: name})
		case strings.HasPrefix(ref, "headers."):
			name := strings.TrimPrefix(ref, "headers.")
			if name == "" || strings.ContainsAny(name, " \t:") {
				return nil, fmt.Errorf("${%s}: not a header name", ref)
			}
			t.parts = append(t.parts, keyPart{kind: 'h', text: http.CanonicalHeaderKey(name)})
		case strings.HasPrefix(ref, "body#"):
			ptr, err := parsePointer(strings.TrimPrefix(ref, "body#"))
			if err != nil {
				return nil, fmt.Errorf("${%s}: %w", ref, err)
			}
			t.parts = append(t.parts, keyPart{kind: 'b', text: strings.TrimPrefix(ref, "body#"), pointer: ptr})
			t.body = true
		default:
			return nil, fmt.Errorf("${%s}: want ${params.NAME}, ${headers.NAME} or ${body#/json/pointer}", ref)
		}
	}
	if last < len(s) {
		t.parts = append(t.parts, keyPart{text: s[last:]})
	}
	if rest := placeholderRE.ReplaceAllString(s, ""); strings.Contains(rest, "${") {
		return nil, fmt.Errorf("%q: an unclosed ${", s)
	}
	if !slices.ContainsFunc(t.parts, func(p keyPart) bool { return p.kind != 0 }) {
		return nil, fmt.Errorf("%q: no placeholder; a constant key sends every message to one partition", s)
	}
	return t, nil
}

// String returns the template as configured.
func (t *KeyTemplate) String() string { return t.src }

// pathParams returns the parameter names of a chi pattern ({id}, {id:[0-9]+}).
func pathParams(path string) []string {
	var names []string
	for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
		names = append(names, m[1])
	}
	return names
}

// parsePointer parses an RFC 6901 JSON pointer ("" is the whole document).
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("a JSON pointer starts with /: %q", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, tok := range toks {
		for j := 0; j < len(tok); j++ {
			if tok[j] == '~' && (j+1 == len(tok) || (tok[j+1] != '0' && tok[j+1] != '1')) {
				return nil, fmt.Errorf("%q: ~ must be followed by 0 or 1", p)
			}
		}
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

// errKeyMissing is wrapped by Expand's errors: the request lacks a value.
var errKeyMissing = errors.New("message key")

// Expand returns the key of request r, whose body is body.
func (t *KeyTemplate) Expand(r *http.Request, body []byte) (string, error) {
	var doc any
	if t.body {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return "", fmt.Errorf("%w: the route keys by the JSON body (%s), which does not parse: %v", errKeyMissing, t.src, err)
		}
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case 0:
			b.WriteString(p.text)
		case 'p':
			v := chi.URLParam(r, p.text)
			if v == "" {
				return "", fmt.Errorf("%w: the path parameter {%s} is empty", errKeyMissing, p.text)
			}
			b.WriteString(v)
		case 'h':
			v := first(r.Header[p.text])
			if v == "" {
				return "", fmt.Errorf("%w: the route keys messages by the header %s, which the request lacks", errKeyMissing, p.text)
			}
			b.WriteString(v)
		case 'b':
			v, err := pointerValue(doc, p.pointer)
			if err != nil {
				return "", fmt.Errorf("%w: the body at %s: %v", errKeyMissing, p.text, err)
			}
			b.WriteString(v)
		}
	}
	if b.Len() > MaxKeyLen {
		return "", fmt.Errorf("%w: %d bytes, more than %d", errKeyMissing, b.Len(), MaxKeyLen)
	}
	return b.String(), nil
}

// pointerValue resolves ptr in doc to a scalar's text.
func pointerValue(doc any, ptr []string) (string, error) {
	v := doc
	for _, tok := range ptr {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return "", fmt.Errorf("no member %q", tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) || (len(tok) > 1 && tok[0] == '0') {
				return "", fmt.Errorf("no element %q in an array of %d", tok, len(x))
			}
			v = x[i]
		default:
			return "", fmt.Errorf("%q: not inside an object or array", tok)
		}
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			return "", errors.New("an empty string")
		}
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", errors.New("null")
	default:
		return "", errors.New("an object or array, not a string, number or boolean")
	}
}
