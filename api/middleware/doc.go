// Package middleware holds syncgate's HTTP middleware, one concern per file,
// each a func(http.Handler) http.Handler composed in the router.
package middleware
