package loadtest

import "testing"

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 1}, {-3, 1}, {0.7, 0.8}, {1, 1}, {1.01, 1.2}, {9.7, 10}, {51.8, 60}, {125, 150}, {2400, 2500},
	} {
		if got := niceCeil(tc.in); got < tc.want*(1-1e-9) || got > tc.want*(1+1e-9) {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
