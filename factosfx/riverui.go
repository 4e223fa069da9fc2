package factosfx

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// RiverUIConfig configures the River UI handler. River UI has no
// authentication of its own, so the handler refuses to exist unprotected
// unless the operator says so explicitly.
type RiverUIConfig struct {
	// Prefix is the path the handler is mounted under. Default: "/riverui".
	Prefix string
	// Username and Password, if set, protect the UI with HTTP basic auth.
	Username string
	Password string
	// Middleware, if set, wraps the UI instead of basic auth: bring your
	// own SSO or network check.
	Middleware func(http.Handler) http.Handler
	// AllowUnauthenticated serves the UI without any protection. Only for
	// local development. Default: false.
	AllowUnauthenticated bool
	// Logger. Default: discard.
	Logger *slog.Logger
}

// ErrRiverUIUnprotected is returned by NewRiverUIHandler when no
// protection is configured and AllowUnauthenticated is not set.
var ErrRiverUIUnprotected = errors.New("factosfx: River UI needs credentials, a middleware, or AllowUnauthenticated")

// RiverUIHandler serves River UI (its embedded frontend and JSON API)
// under a prefix, behind the configured protection. The worker mounts it
// at PathRiverUI when RiverUIEnabled is set.
type RiverUIHandler struct {
	http.Handler
	ui *riverui.Handler
}

// NewRiverUIHandler builds the River UI handler for client. Mount it at
// Prefix+"/" and call Start before serving.
func NewRiverUIHandler(client *river.Client[pgx.Tx], cfg RiverUIConfig) (*RiverUIHandler, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/riverui"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	protect := cfg.Middleware
	switch {
	case protect != nil:
	case cfg.Username != "" || cfg.Password != "":
		if cfg.Username == "" || cfg.Password == "" {
			return nil, errors.New("factosfx: River UI basic auth needs both a username and a password")
		}
		protect = basicAuth(cfg.Username, cfg.Password)
	case cfg.AllowUnauthenticated:
		protect = func(h http.Handler) http.Handler { return h }
	default:
		return nil, ErrRiverUIUnprotected
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    cfg.Logger,
		Prefix:    cfg.Prefix,
	})
	if err != nil {
		return nil, err
	}
	return &RiverUIHandler{Handler: protect(ui), ui: ui}, nil
}

// Start starts the UI's background services; they stop when ctx ends.
func (h *RiverUIHandler) Start(ctx context.Context) error { return h.ui.Start(ctx) }

// basicAuth compares hashes in constant time so that neither the
// credentials nor their length leak through timing.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="River UI", charset="UTF-8"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
