package correlation

import "github.com/google/uuid"

// NewID returns a fresh correlation id: a UUIDv7 in canonical lower-case form.
// The id is generated here, never taken from the client.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.NewString()
	}
	return id.String()
}
