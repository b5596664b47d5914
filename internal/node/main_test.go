package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every node test stops its node; no goroutine may outlive Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
