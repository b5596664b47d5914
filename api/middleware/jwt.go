package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrKeysUnavailable: the JWT's signature could not be checked because the
// issuer's keys are not known (the JWKS was never fetched, or not for
// max_key_age, or the latest fetch failed and the token names a key the
// cached set lacks). It does not wrap ErrInvalidCredential: the API
// answers 503, never a pass.
var ErrKeysUnavailable = errors.New("jwt: signing keys unavailable")

// Defaults of JWTConfig.
const (
	DefaultJWTRefreshInterval    = 5 * time.Minute
	DefaultJWTUnknownKIDInterval = time.Minute
	DefaultJWTFetchTimeout       = 10 * time.Second
	DefaultJWTMaxKeyAge          = time.Hour
	DefaultJWTPrincipalClaim     = "sub"
)

// JWTAlgorithms are the signing algorithms a JWT may use: the asymmetric
// ones only. HMAC is refused: a key taken from a JWKS is public, so an
// HS256 "signature" made with it proves nothing; "none" proves nothing
// either.
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWTConfig configures a JWT authenticator. Zero durations and an empty
// PrincipalClaim or Algorithms take the defaults above; Leeway 0 means
// none.
type JWTConfig struct {
	// JWKSURL is the issuer's JSON Web Key Set (http or https).
	JWKSURL string
	// Issuer must equal the token's iss; Audience must be in its aud.
	Issuer, Audience string
	// PrincipalClaim names the claim whose string value is the principal.
	PrincipalClaim string
	// Algorithms are the accepted alg values, a subset of JWTAlgorithms.
	Algorithms []string
	// RefreshInterval is how often the JWKS is fetched in the background.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by
	// a token whose kid is not in the cached set (a key rotation).
	UnknownKIDInterval time.Duration
	// FetchTimeout bounds one fetch of the JWKS.
	FetchTimeout time.Duration
	// MaxKeyAge is how long keys stay trusted after the last successful
	// fetch while the JWKS cannot be fetched; past it every JWT is 503.
	MaxKeyAge time.Duration
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// Client fetches the JWKS; nil: a client of its own.
	Client *http.Client
	Logger *slog.Logger
}

func (c *JWTConfig) setDefaults() {
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defDur(&c.RefreshInterval, DefaultJWTRefreshInterval)
	defDur(&c.UnknownKIDInterval, DefaultJWTUnknownKIDInterval)
	defDur(&c.FetchTimeout, DefaultJWTFetchTimeout)
	defDur(&c.MaxKeyAge, DefaultJWTMaxKeyAge)
	if c.PrincipalClaim == "" {
		c.PrincipalClaim = DefaultJWTPrincipalClaim
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = JWTAlgorithms
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// CheckJWKSURL returns why u cannot be a JWKS URL, nil if it can.
func CheckJWKSURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", u)
	}
	return nil
}

// CheckJWTAlgorithm returns why alg cannot be accepted, nil if it can.
func CheckJWTAlgorithm(alg string) error {
	if slices.Contains(JWTAlgorithms, alg) {
		return nil
	}
	return fmt.Errorf("%q is not one of %v (HMAC and none are refused: a JWKS key is public)", alg, JWTAlgorithms)
}

// JWT authenticates bearer tokens that are JWTs signed by a key of the
// issuer's JWKS: the signature (the algorithm pinned by the key: the JWK's
// alg when it has one, its key type always), exp (required), nbf, iss and
// aud. The principal is the string value of the principal claim. Run
// fetches and refreshes the keys; until it has them, JWTs are answered
// with ErrKeysUnavailable (503), never let through.
type JWT struct {
	cfg    JWTConfig
	log    *slog.Logger
	parser *jwt.Parser
	kf     atomic.Pointer[keyfunc.Keyfunc] // set by Run once the first fetch was tried

	mu       sync.Mutex
	lastOK   time.Time // last successful fetch
	lastFail error     // the latest fetch's error, nil once one succeeds
}

// NewJWT checks cfg and returns an authenticator with no keys yet: call
// Run.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	cfg.setDefaults()
	if err := CheckJWKSURL(cfg.JWKSURL); err != nil {
		return nil, fmt.Errorf("jwt: jwks url: %w", err)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: issuer and audience are required")
	}
	for _, alg := range cfg.Algorithms {
		if err := CheckJWTAlgorithm(alg); err != nil {
			return nil, fmt.Errorf("jwt: algorithm %w", err)
		}
	}
	if cfg.MaxKeyAge < cfg.RefreshInterval {
		return nil, fmt.Errorf("jwt: max key age %s is shorter than the refresh interval %s", cfg.MaxKeyAge, cfg.RefreshInterval)
	}
	return &JWT{
		cfg: cfg,
		log: cfg.Logger.With(slog.String("component", "jwt")),
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
		),
	}, nil
}

// Run fetches the JWKS, then refreshes it every RefreshInterval until ctx
// ends (the refresh goroutine is keyfunc's, stopped by ctx). The first
// fetch may fail: the keys then come with the next refresh, or sooner
// with a token that names a kid (at most once per UnknownKIDInterval).
func (j *JWT) Run(ctx context.Context) {
	store := &observedStorage{Storage: jwkset.NewMemoryStorage(), j: j}
	remote, err := jwkset.NewStorageFromHTTP(j.cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    j.cfg.Client,
		Ctx:                       ctx,
		HTTPTimeout:               j.cfg.FetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       j.fetchFailed,
		RefreshInterval:           j.cfg.RefreshInterval,
		Storage:                   store,
	})
	if err == nil {
		var set jwkset.Storage
		set, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
			HTTPURLs: map[string]jwkset.Storage{j.cfg.JWKSURL: remote},
			// Bounds the wait for the limiter and the fetch it allows:
			// a token with an unknown kid waits at most this long.
			RateLimitWaitMax:  j.cfg.FetchTimeout,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(j.cfg.UnknownKIDInterval), 1),
		})
		if err == nil {
			var kf keyfunc.Keyfunc
			kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: set,
				UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
			if err == nil {
				j.kf.Store(&kf)
			}
		}
	}
	if err != nil {
		// Not expected once NewJWT accepted the URL; JWTs stay 503.
		j.log.ErrorContext(ctx, "jwks: cannot set up", slog.Any("error", err))
	}
	<-ctx.Done()
	j.kf.Store(nil)
}

// Check reports whether the keys are usable (for readiness).
func (j *JWT) Check(context.Context) error {
	if st := j.keyState(); st.stale || st.lastFail != nil {
		return st.err()
	}
	return nil
}

type keyState struct {
	stale    bool // never fetched, or not within MaxKeyAge
	lastOK   time.Time
	lastFail error
}

func (s keyState) err() error {
	switch {
	case s.lastOK.IsZero() && s.lastFail == nil:
		return fmt.Errorf("%w: JWKS not fetched yet", ErrKeysUnavailable)
	case s.lastOK.IsZero():
		return fmt.Errorf("%w: JWKS never fetched: %w", ErrKeysUnavailable, s.lastFail)
	case s.stale:
		return fmt.Errorf("%w: keys fetched at %s are too old; last fetch: %w", ErrKeysUnavailable, s.lastOK.Format(time.RFC3339), s.lastFail)
	default:
		return fmt.Errorf("%w: last fetch of the JWKS failed: %w", ErrKeysUnavailable, s.lastFail)
	}
}

func (j *JWT) keyState() keyState {
	j.mu.Lock()
	defer j.mu.Unlock()
	return keyState{
		stale:  j.lastOK.IsZero() || time.Since(j.lastOK) > j.cfg.MaxKeyAge,
		lastOK: j.lastOK, lastFail: j.lastFail,
	}
}

func (j *JWT) fetched(n int) {
	j.mu.Lock()
	first := j.lastOK.IsZero() || j.lastFail != nil
	j.lastOK, j.lastFail = time.Now(), nil
	j.mu.Unlock()
	if first {
		j.log.Info("jwks fetched", slog.String("jwks_url", j.cfg.JWKSURL), slog.Int("keys", n))
	}
}

func (j *JWT) fetchFailed(ctx context.Context, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutting down, or the request that asked went away
	}
	j.mu.Lock()
	j.lastFail = err
	j.mu.Unlock()
	j.log.WarnContext(ctx, "jwks: fetch failed", slog.String("jwks_url", j.cfg.JWKSURL), slog.Any("error", err))
}

// observedStorage records each successful fetch: jwkset replaces the
// whole set after a fetch that succeeded, and only then.
type observedStorage struct {
	jwkset.Storage
	j *JWT
}

func (s *observedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if err := s.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.j.fetched(len(given))
	return nil
}

// Authenticate implements Authenticator.
func (j *JWT) Authenticate(ctx context.Context, token string) (string, error) {
	kf := j.kf.Load()
	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if kf == nil {
			return nil, j.keyState().err()
		}
		key, err := (*kf).KeyfuncCtx(ctx)(t)
		// Asked after the lookup, which may have fetched the set anew.
		st := j.keyState()
		if st.stale || st.lastFail != nil && (err != nil || noKeys(key)) {
			// No key, or keys that may be out of date: the token may be
			// good, it cannot be checked.
			return nil, st.err()
		}
		return key, err
	})
	if errors.Is(err, ErrKeysUnavailable) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("jwt: %w: %w", ErrInvalidCredential, err)
	}
	p, _ := claims[j.cfg.PrincipalClaim].(string)
	if p == "" {
		return "", fmt.Errorf("jwt: claim %q is missing, empty or not a string: %w", j.cfg.PrincipalClaim, ErrInvalidCredential)
	}
	return p, nil
}

// noKeys reports an empty key set (a token without kid, no keys cached).
func noKeys(key any) bool {
	ks, ok := key.(jwt.VerificationKeySet)
	return ok && len(ks.Keys) == 0
}
