package gateway

import "testing"

func TestHubReleasesEntries(t *testing.T) {
	h := newHub()
	a, b := h.subscribe("x"), h.subscribe("x")
	if a != b || h.len() != 1 {
		t.Fatalf("two waiters of one id share one entry; len %d", h.len())
	}
	h.release("x", a)
	if h.len() != 1 {
		t.Fatal("released while a waiter remains")
	}
	h.notify("x")
	select {
	case <-b.ch:
	default:
		t.Fatal("notify did not wake")
	}
	h.release("x", b)
	c := h.subscribe("x") // a new wait after the notify gets a fresh channel
	if c == b {
		t.Fatal("a notified entry was reused")
	}
	h.release("x", c)
	if h.len() != 0 {
		t.Fatalf("%d entries left", h.len())
	}
	h.notify("nobody") // no-op
	h.close()
	h.close()
}
