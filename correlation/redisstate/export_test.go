package redisstate

// The key layout, for the tests that look at keys directly.
var (
	ResultKey = resultKey
	OwnerKey  = ownerKey
)

func LeaseKey(prefix, node string) string { return prefix + membersTag + ":lease:" + node }
func MembersKey(prefix string) string     { return prefix + membersTag }
func IdemKey(prefix, scope, key string) string {
	return (&Idempotency{prefix: prefix}).key(scope, key)
}
