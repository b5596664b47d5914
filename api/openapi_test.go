package api_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/syncgate/syncgate/api"
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
