package tap

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends x as one JSON object, the same that encoding/json
// writes for it (fields in the same order; a map's keys in no particular
// order), several times faster: a tap encodes every exchange of its
// routes, on the same cores that serve them.
func AppendJSON(b []byte, x *Exchange) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, x.Time)
	b = appendField(b, "node", x.Node)
	b = appendField(b, "route", x.Route)
	b = appendField(b, "correlation_id", x.CorrelationID)
	if x.RequestID != "" {
		b = appendField(b, "request_id", x.RequestID)
	}
	if x.Principal != "" {
		b = appendField(b, "principal", x.Principal)
	}
	b = append(b, `,"request":{`...)
	r := &x.Request
	b = append(b, `"method":`...)
	b = appendString(b, r.Method)
	b = appendField(b, "path", r.Path)
	if r.Query != "" {
		b = appendField(b, "query", r.Query)
	}
	if len(r.Header) > 0 {
		b = append(b, `,"header":{`...)
		first := true
		for k, vs := range r.Header {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ":["...)
			for i, v := range vs {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = appendBody(b, r.Body, r.BodyTruncated)
	b = append(b, `},"status":`...)
	b = strconv.AppendInt(b, int64(x.Status), 10)
	b = appendField(b, "outcome", x.Outcome)
	if p := x.Reply; p != nil {
		b = append(b, `,"reply":{"status":`...)
		b = strconv.AppendInt(b, int64(p.Status), 10)
		if p.ContentType != "" {
			b = appendField(b, "content_type", p.ContentType)
		}
		if len(p.Header) > 0 {
			b = append(b, `,"header":{`...)
			first := true
			for k, v := range p.Header {
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendString(b, k)
				b = append(b, ':')
				b = appendString(b, v)
			}
			b = append(b, '}')
		}
		b = appendBody(b, p.Body, p.BodyTruncated)
		b = append(b, '}')
	}
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, x.DurationMS, 'f', -1, 64)
	if x.BrokerMS != 0 {
		b = append(b, `,"broker_ms":`...)
		b = strconv.AppendFloat(b, x.BrokerMS, 'f', -1, 64)
	}
	return append(b, '}')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendBody(b, body []byte, truncated bool) []byte {
	if len(body) > 0 {
		b = append(b, `,"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, body)
		b = append(b, '"')
	}
	if truncated {
		b = append(b, `,"body_truncated":true`...)
	}
	return b
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters included; invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
