// Package archtest holds the test that keeps the layers of ARCHITECTURE.md
// apart: it fails when a package imports what its layer may not. It has no
// code of its own.
package archtest
