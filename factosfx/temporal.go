package factosfx

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// The Temporal connection's security: TLS (a server CA, a client
// certificate for mutual TLS) and an API key, as Temporal Cloud needs them.
// The variables have the names Temporal's own tools read (the temporal CLI
// and the SDKs' environment configuration), so the same environment
// configures `temporal` in a debugging shell next to the worker.
const (
	envTemporalTLS        = "TEMPORAL_TLS"
	envTemporalServerName = "TEMPORAL_TLS_SERVER_NAME"
	envTemporalCAPath     = "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
	envTemporalCAData     = "TEMPORAL_TLS_SERVER_CA_CERT_DATA"
	envTemporalCertPath   = "TEMPORAL_TLS_CLIENT_CERT_PATH"
	envTemporalCertData   = "TEMPORAL_TLS_CLIENT_CERT_DATA"
	envTemporalKeyPath    = "TEMPORAL_TLS_CLIENT_KEY_PATH"
	envTemporalKeyData    = "TEMPORAL_TLS_CLIENT_KEY_DATA"
	envTemporalAPIKey     = "TEMPORAL_API_KEY"
)

// TemporalClientOptions returns the options of a Temporal client for cfg:
// address, namespace, TLS and API key credentials, and a logger built on l.
// It reads and checks the certificate files (LoadConfig has checked them
// once already; they may have changed since). A client certificate given
// as files is read again at every TLS handshake, so a rotated certificate
// (a Kubernetes Secret volume updated by cert-manager, say) is used from
// the next connection on, without a restart.
func TemporalClientOptions(cfg *Config, l *slog.Logger) (client.Options, error) {
	conn, creds, err := cfg.temporalConnection(l)
	if err != nil {
		return client.Options{}, err
	}
	return client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            log.NewStructuredLogger(l.With("component", "temporal")),
		ConnectionOptions: conn,
		Credentials:       creds,
	}, nil
}

// resolveTemporalTLS decides TEMPORAL_TLS when it is unset, the way the
// temporal CLI does: on as soon as an API key or any TLS setting is given.
func (c *Config) resolveTemporalTLS(explicit bool) {
	if !explicit {
		c.TemporalTLS = c.TemporalAPIKey != "" || c.TemporalTLSServerName != "" || len(c.temporalTLSSettings()) > 0
	}
}

// temporalTLSSettings names the TLS variables that are set (the server
// name aside).
func (c *Config) temporalTLSSettings() []string {
	var set []string
	ca, cert, key := c.temporalPEMs()
	for _, s := range []pemSource{ca, cert, key} {
		if s.path != "" {
			set = append(set, s.pathVar)
		}
		if s.data != "" {
			set = append(set, s.dataVar)
		}
	}
	return set
}

// pemSource is PEM data given as a file or inline, by two variables.
type pemSource struct {
	what             string // for messages: "the server CA", ...
	pathVar, dataVar string
	path, data       string
}

func (c *Config) temporalPEMs() (ca, cert, key pemSource) {
	return pemSource{"server CA certificates", envTemporalCAPath, envTemporalCAData, c.TemporalTLSCAPath, c.TemporalTLSCAData},
		pemSource{"client certificate", envTemporalCertPath, envTemporalCertData, c.TemporalTLSCertPath, c.TemporalTLSCertData},
		pemSource{"client key", envTemporalKeyPath, envTemporalKeyData, c.TemporalTLSKeyPath, c.TemporalTLSKeyData}
}

func (s pemSource) isSet() bool { return s.path != "" || s.data != "" }

// name is the variable the PEM comes from.
func (s pemSource) name() string {
	if s.path != "" {
		return s.pathVar
	}
	return s.dataVar
}

func (s pemSource) load() ([]byte, error) {
	if s.path != "" && s.data != "" {
		return nil, &ConfigError{Var: s.dataVar, Reason: "set together with " + s.pathVar + ": give the " + s.what + " one way"}
	}
	if s.path == "" {
		return []byte(s.data), nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, &ConfigError{Var: s.pathVar, Reason: fmt.Sprintf("%q: cannot read the %s: %v", s.path, s.what, err)}
	}
	return b, nil
}

// pemProblem explains input that holds no PEM block of the type wanted.
// Inline PEM in an environment variable often loses its line breaks on
// the way.
func pemProblem(b []byte, want string) string {
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		return "is empty"
	case bytes.Contains(b, []byte(`\n`)) && !bytes.Contains(b, []byte("\n")):
		return `holds no PEM block: its line breaks are written as \n; give the PEM with real line breaks`
	default:
		return "holds no complete PEM block (-----BEGIN " + want + "----- ... -----END " + want + "-----)"
	}
}

// certificates parses PEM that must hold certificates and nothing else.
func certificates(b []byte) ([]*x509.Certificate, string) {
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			// The type only: the block may be a private key.
			return nil, fmt.Sprintf("holds a %q PEM block; want CERTIFICATE blocks only", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Sprintf("certificate %d does not parse: %v", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, pemProblem(b, "CERTIFICATE")
	}
	return certs, ""
}

// temporalConnection builds the connection's TLS configuration and
// credentials, and reports every problem, each naming its variable.
func (c *Config) temporalConnection(l *slog.Logger) (client.ConnectionOptions, client.Credentials, error) {
	var errs []error
	bad := func(v, reason string) { errs = append(errs, &ConfigError{Var: v, Reason: reason}) }
	var creds client.Credentials
	if c.TemporalAPIKey != "" {
		creds = client.NewAPIKeyStaticCredentials(c.TemporalAPIKey)
	}
	if !c.TemporalTLS {
		if c.TemporalAPIKey != "" {
			bad(envTemporalAPIKey, "needs TLS, but TEMPORAL_TLS is false: the key travels in every request's headers, "+
				"which would then be plain text (Temporal Cloud accepts TLS connections only). Unset TEMPORAL_TLS or set it to true")
		}
		if set := c.temporalTLSSettings(); len(set) > 0 || c.TemporalTLSServerName != "" {
			if c.TemporalTLSServerName != "" {
				set = append(set, envTemporalServerName)
			}
			bad(envTemporalTLS, "is false, but "+strings.Join(set, ", ")+" configure TLS: unset TEMPORAL_TLS or set it to true, or remove them")
		}
		return client.ConnectionOptions{}, nil, errors.Join(errs...)
	}

	conf := &tls.Config{ServerName: c.TemporalTLSServerName, MinVersion: tls.VersionTLS12}
	ca, cert, key := c.temporalPEMs()
	if ca.isSet() {
		if b, err := ca.load(); err != nil {
			errs = append(errs, err)
		} else if roots, problem := certificates(b); problem != "" {
			bad(ca.name(), problem)
		} else {
			conf.RootCAs = x509.NewCertPool()
			for _, r := range roots {
				conf.RootCAs.AddCert(r)
			}
		}
	}

	switch {
	case cert.isSet() && !key.isSet():
		bad(cert.name(), "set without the client's private key ("+envTemporalKeyPath+" or "+envTemporalKeyData+")")
	case key.isSet() && !cert.isSet():
		bad(key.name(), "set without the client certificate ("+envTemporalCertPath+" or "+envTemporalCertData+")")
	case cert.isSet():
		pair, err := loadPair(cert, key, time.Now())
		if err != nil {
			errs = append(errs, err)
			break
		}
		if cert.path != "" && key.path != "" {
			r := &reloadingPair{cert: cert, key: key, log: l.With("component", "temporal"), last: pair}
			conf.GetClientCertificate = r.get
		} else {
			conf.Certificates = []tls.Certificate{*pair}
		}
	}
	if len(errs) > 0 {
		return client.ConnectionOptions{}, nil, errors.Join(errs...)
	}
	return client.ConnectionOptions{TLS: conf}, creds, nil
}

// loadPair reads a client certificate and its key and checks that they
// make a pair valid at now. Messages never quote the key.
func loadPair(cert, key pemSource, now time.Time) (*tls.Certificate, error) {
	certPEM, err := cert.load()
	if err != nil {
		return nil, err
	}
	keyPEM, err := key.load()
	if err != nil {
		return nil, err
	}
	chain, problem := certificates(certPEM)
	if problem != "" {
		return nil, &ConfigError{Var: cert.name(), Reason: problem}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if block, _ := pem.Decode(keyPEM); block == nil {
			return nil, &ConfigError{Var: key.name(), Reason: pemProblem(keyPEM, "PRIVATE KEY")}
		}
		return nil, &ConfigError{Var: key.name(), Reason: "is not the private key of the certificate in " + cert.name() + ": " + err.Error()}
	}
	leaf := chain[0]
	pair.Leaf = leaf
	switch {
	case now.After(leaf.NotAfter):
		return nil, &ConfigError{Var: cert.name(), Reason: fmt.Sprintf("the client certificate (%s) expired at %s", leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(leaf.NotBefore):
		return nil, &ConfigError{Var: cert.name(), Reason: fmt.Sprintf("the client certificate (%s) is not valid before %s", leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339))}
	}
	return &pair, nil
}

// reloadingPair reads the client certificate files at every handshake. If
// they cannot be read or do not make a pair (caught mid-rotation), it
// keeps using the last good pair and says so.
type reloadingPair struct {
	cert, key pemSource
	log       *slog.Logger

	mu   sync.Mutex
	last *tls.Certificate
}

func (r *reloadingPair) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	pair, err := loadPair(r.cert, r.key, time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.log.Warn("error reloading the Temporal client certificate; using the one loaded before", "error", err,
			"expires", r.last.Leaf.NotAfter.UTC().Format(time.RFC3339))
		return r.last, nil
	}
	if !pair.Leaf.Equal(r.last.Leaf) {
		r.log.Info("Temporal client certificate reloaded", "subject", pair.Leaf.Subject.String(),
			"serial", pair.Leaf.SerialNumber.String(), "expires", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	r.last = pair
	return pair, nil
}

// pemOrigin says where a PEM comes from, for the start-up log line: the
// file, "inline", or "none".
func pemOrigin(path, data string) string {
	switch {
	case path != "":
		return path
	case data != "":
		return "inline"
	}
	return "none"
}
