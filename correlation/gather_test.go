package correlation_test

import (
	"testing"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
)

func TestMemoryStoreParts(t *testing.T) {
	correlationtest.Parts(t, correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
}
