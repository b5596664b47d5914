package brokers

// SetDefault sets *p to v when *p is the zero value of its type: how a
// backend's Config.SetDefaults fills the fields left unset. It lives here,
// beside the abstraction every backend imports, so that the backends share
// one helper without importing each other.
func SetDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
