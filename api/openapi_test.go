package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/gateway"
)

// The document's problem types are the catalogue's.
func TestOpenAPIProblemTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				ProblemType struct {
					Enum []string `json:"enum"`
				}
			}
		}
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, pt := range api.Catalogue() {
		want = append(want, pt.URI())
	}
	got := slices.Sorted(slices.Values(doc.Components.Schemas.ProblemType.Enum))
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Errorf("openapi.json ProblemType enum:\n%v\nwant the catalogue:\n%v", got, want)
	}
}

// The scatter-gather document's fields are the schema's properties, and
// its required ones are always written.
func TestOpenAPIGatherSchema(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
		}
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	text := "x"
	full := gateway.GatherDoc{ID: "i", Gather: gateway.GatherQuorum, Quorum: 1, Parts: []gateway.PartDoc{{
		Name: "n", Destination: "d", ID: "p", State: gateway.PartDone, Status: 200, ContentType: "c",
		Headers: map[string]string{"h": "v"}, Body: json.RawMessage(`{}`), BodyText: &text, BodyBase64: []byte{1}, Error: "e",
	}}}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Top   map[string]json.RawMessage
		Parts []map[string]json.RawMessage `json:"parts"`
	}
	if err := json.Unmarshal(b, &got.Top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for schema, fields := range map[string]map[string]json.RawMessage{"GatherBody": got.Top, "GatherPart": got.Parts[0]} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Fatalf("openapi.json has no %s", schema)
		}
		for f := range fields {
			if _, ok := s.Properties[f]; !ok {
				t.Errorf("%s: field %q is not in the schema", schema, f)
			}
		}
		for f := range s.Properties {
			if _, ok := fields[f]; !ok {
				t.Errorf("%s: property %q is not a field", schema, f)
			}
		}
	}
	min, _ := json.Marshal(gateway.GatherDoc{Parts: []gateway.PartDoc{{}}})
	for _, f := range append(doc.Components.Schemas["GatherBody"].Required, "parts") {
		if !json.Valid(min) || !strings.Contains(string(min), `"`+f+`"`) {
			t.Errorf("GatherBody requires %q, which an empty document omits: %s", f, min)
		}
	}
}
