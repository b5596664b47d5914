package redisstate

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// wireVersion is bumped when wireReply changes incompatibly, so nodes of
// different versions reject each other's messages instead of misreading them.
const wireVersion = 1

// wireReply is the pub/sub form of an envelope.Reply. The body is base64
// (encoding/json's []byte), so it travels byte-exact; strings must be UTF-8
// (JSON replaces invalid bytes).
type wireReply struct {
	V           int               `json:"v"`
	ID          string            `json:"id"`
	Status      int               `json:"status,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Header      map[string]string `json:"header,omitempty"`
	TraceParent string            `json:"traceparent,omitempty"`
	TraceState  string            `json:"tracestate,omitempty"`
	Body        []byte            `json:"body,omitempty"`
}

var errNoID = errors.New("reply without correlation id")

func encodeReply(rep envelope.Reply) ([]byte, error) {
	if rep.CorrelationID == "" {
		return nil, fmt.Errorf("redis: forward: %w", errNoID)
	}
	return json.Marshal(wireReply{
		V: wireVersion, ID: rep.CorrelationID, Status: rep.Status, ContentType: rep.ContentType,
		Header: rep.Header, TraceParent: rep.TraceParent, TraceState: rep.TraceState, Body: rep.Body,
	})
}

func decodeReply(b []byte) (envelope.Reply, error) {
	var w wireReply
	if err := json.Unmarshal(b, &w); err != nil {
		return envelope.Reply{}, err
	}
	switch {
	case w.V != wireVersion:
		return envelope.Reply{}, fmt.Errorf("wire version %d, want %d", w.V, wireVersion)
	case w.ID == "":
		return envelope.Reply{}, errNoID
	case w.Status != 0 && (w.Status < 100 || w.Status > 999):
		return envelope.Reply{}, fmt.Errorf("status %d out of range", w.Status)
	}
	return envelope.Reply{
		CorrelationID: w.ID, Status: w.Status, ContentType: w.ContentType, Header: w.Header,
		TraceParent: w.TraceParent, TraceState: w.TraceState, Body: w.Body,
	}, nil
}
