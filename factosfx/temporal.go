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
	"unicode"

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
	what             string // for messages: "the client certificate", ...
	holds            string // what the PEM should hold, for messages
	pathVar, dataVar string
	path, data       string
	// secret: the inline PEM is a secret (the private key), never quoted.
	secret bool
}

func (c *Config) temporalPEMs() (ca, cert, key pemSource) {
	return pemSource{what: "the server CA certificates", holds: "the CA certificates that sign the Temporal server's certificate",
			pathVar: envTemporalCAPath, dataVar: envTemporalCAData, path: c.TemporalTLSCAPath, data: c.TemporalTLSCAData},
		pemSource{what: "the client certificate", holds: "the client certificate (its chain may follow it)",
			pathVar: envTemporalCertPath, dataVar: envTemporalCertData, path: c.TemporalTLSCertPath, data: c.TemporalTLSCertData},
		pemSource{what: "the client key", holds: "the client certificate's private key",
			pathVar: envTemporalKeyPath, dataVar: envTemporalKeyData, path: c.TemporalTLSKeyPath, data: c.TemporalTLSKeyData, secret: true}
}

func (s pemSource) isSet() bool { return s.path != "" || s.data != "" }

// name is the variable the PEM comes from.
func (s pemSource) name() string {
	if s.path != "" {
		return s.pathVar
	}
	return s.dataVar
}

// refuse is the error for the variable the PEM comes from, with its value
// quoted as far as that is safe (see quotable).
func (s pemSource) refuse(reason, valid string) *ConfigError {
	ce := &ConfigError{Var: s.name(), Reason: reason, Valid: valid}
	shown := false
	switch {
	case s.path != "":
		ce.Value, shown = quotable(s.path, true)
	case !s.secret:
		ce.Value, shown = quotable(s.data, false)
	}
	ce.Secret = !shown
	return ce
}

// bad is the error for PEM text that is wrong: problem is said of the text
// ("holds no PEM block"), and valid is what the variable accepts (see
// accepts).
func (s pemSource) bad(problem, valid string) *ConfigError {
	if s.path != "" {
		problem = "names a file that " + problem
	}
	return s.refuse(problem, valid)
}

// accepts is what the variable the PEM comes from accepts, for PEM that
// holds holding.
func (s pemSource) accepts(holding string) string {
	if s.path != "" {
		return "the path of a readable PEM file holding " + holding
	}
	return holding + " as PEM text"
}

// quotable is a TLS variable's value as a message may quote it, and
// whether it may. Paths and certificates are no secrets, but a private key
// may end up in their variables by mistake (the key's PEM given as the
// certificate's, or in a path variable): a value with a private key is
// never shown. Long PEM is shortened to its beginning, which is all a
// reader needs to see what it is; other long inline text, and a path of
// several lines, are not shown, as they may be a key without its PEM
// lines.
func quotable(v string, path bool) (string, bool) {
	const short, begin = 32, 40
	trimmed := strings.TrimLeftFunc(v, unicode.IsSpace)
	switch {
	case strings.Contains(v, "PRIVATE KEY"):
		return "", false
	case strings.HasPrefix(trimmed, "-----BEGIN ") && len(trimmed) > begin:
		return trimmed[:begin] + "...", true
	case path && !strings.ContainsAny(v, "\r\n") || len(v) <= short:
		return v, true
	}
	return "", false
}

// looksLikePath reports inline PEM that is a file's path instead.
func looksLikePath(v string) bool {
	v = strings.TrimSpace(v)
	return !strings.ContainsAny(v, " \n") &&
		(strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") || strings.HasPrefix(v, "~/"))
}

func (s pemSource) load() ([]byte, error) {
	switch {
	case s.path != "" && s.data != "":
		return nil, &ConfigError{Var: s.pathVar, Reason: "and " + s.dataVar + " are both set",
			Valid: "one or the other: " + s.what + " as a file or as PEM text"}
	case strings.Contains(s.path, "-----BEGIN"):
		return nil, s.refuse("holds PEM text, not a file's path", s.accepts(s.holds)+" (PEM text itself goes in "+s.dataVar+")")
	case s.path == "" && looksLikePath(s.data):
		return nil, s.refuse("holds a file's path, not PEM text", s.accepts(s.holds)+" (a file's path goes in "+s.pathVar+")")
	case s.path == "":
		return []byte(s.data), nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, s.refuse("cannot be read: "+err.Error(), s.accepts(s.holds))
	}
	return b, nil
}

// pemFault is what is wrong with PEM text, said of the text ("holds no
// PEM block"), and what the text should have besides its content ("with
// real line breaks"), if anything.
type pemFault struct{ problem, with string }

func (s pemSource) badPEM(f *pemFault) *ConfigError {
	return s.bad(f.problem, s.accepts(s.holds)+f.with)
}

// pemProblem explains input that holds no PEM block of the type wanted.
// Inline PEM in an environment variable often loses its line breaks on
// the way.
func pemProblem(b []byte, want string) *pemFault {
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		return &pemFault{problem: "is empty"}
	case bytes.Contains(b, []byte(`\n`)) && !bytes.Contains(b, []byte("\n")):
		return &pemFault{problem: `holds no PEM block: its line breaks are written as \n`, with: ", with real line breaks"}
	default:
		return &pemFault{problem: "holds no complete PEM block (-----BEGIN " + want + "----- ... -----END " + want + "-----)"}
	}
}

// certificates parses PEM that must hold certificates and nothing else.
func certificates(b []byte) ([]*x509.Certificate, *pemFault) {
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			// The type only: the block may be a private key.
			return nil, &pemFault{problem: fmt.Sprintf("holds a %q PEM block, where only CERTIFICATE blocks belong", block.Type)}
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &pemFault{problem: fmt.Sprintf("holds a certificate that does not parse (PEM block %d: %v)", len(certs)+1, err)}
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, pemProblem(b, "CERTIFICATE")
	}
	return certs, nil
}

// temporalConnection builds the connection's TLS configuration and
// credentials, and reports every problem, each naming its variable.
func (c *Config) temporalConnection(l *slog.Logger) (client.ConnectionOptions, client.Credentials, error) {
	var errs []error
	var creds client.Credentials
	if c.TemporalAPIKey != "" {
		creds = client.NewAPIKeyStaticCredentials(c.TemporalAPIKey)
	}
	if !c.TemporalTLS {
		if c.TemporalAPIKey != "" {
			errs = append(errs, &ConfigError{Var: envTemporalAPIKey, Secret: true,
				Reason: "needs TLS, but TEMPORAL_TLS is false: the key would travel in plain text in every request's headers " +
					"(and Temporal Cloud accepts TLS connections only)",
				Valid: "it with TEMPORAL_TLS=true or with TEMPORAL_TLS unset"})
		}
		if set := c.temporalTLSSettings(); len(set) > 0 || c.TemporalTLSServerName != "" {
			if c.TemporalTLSServerName != "" {
				set = append(set, envTemporalServerName)
			}
			verb := "is a TLS setting"
			if len(set) > 1 {
				verb = "are TLS settings"
			}
			errs = append(errs, &ConfigError{Var: envTemporalTLS,
				Reason: "is false, but " + listed(set, "and") + " " + verb,
				Valid:  "true, or leave it unset (TLS then turns on by itself), or remove " + listed(set, "and")})
		}
		return client.ConnectionOptions{}, nil, errors.Join(errs...)
	}

	conf := &tls.Config{ServerName: c.TemporalTLSServerName, MinVersion: tls.VersionTLS12}
	ca, cert, key := c.temporalPEMs()
	if ca.isSet() {
		if b, err := ca.load(); err != nil {
			errs = append(errs, err)
		} else if roots, fault := certificates(b); fault != nil {
			errs = append(errs, ca.badPEM(fault))
		} else {
			conf.RootCAs = x509.NewCertPool()
			for _, r := range roots {
				conf.RootCAs.AddCert(r)
			}
		}
	}

	switch {
	case cert.isSet() && !key.isSet():
		errs = append(errs, cert.refuse("is set, but the client certificate's private key is not",
			"it together with "+envTemporalKeyPath+" or "+envTemporalKeyData+" (mutual TLS needs both)"))
	case key.isSet() && !cert.isSet():
		errs = append(errs, key.refuse("is set, but the client certificate is not",
			"it together with "+envTemporalCertPath+" or "+envTemporalCertData+" (mutual TLS needs both)"))
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
	chain, fault := certificates(certPEM)
	if fault != nil {
		return nil, cert.badPEM(fault)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, keyFault(key, cert, keyPEM, err)
	}
	leaf := chain[0]
	pair.Leaf = leaf
	valid := cert.accepts("a client certificate valid now")
	switch {
	case now.After(leaf.NotAfter):
		return nil, cert.bad(fmt.Sprintf("holds a client certificate (%s) that expired at %s", leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339)), valid)
	case now.Before(leaf.NotBefore):
		return nil, cert.bad(fmt.Sprintf("holds a client certificate (%s) that is not valid before %s (if that time has passed, this machine's clock is wrong)",
			leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339)), valid)
	}
	return &pair, nil
}

// keyFault explains why keyPEM does not make a pair with the certificate:
// tls.X509KeyPair refused them with err, whose message holds no key
// material.
func keyFault(key, cert pemSource, keyPEM []byte, err error) *ConfigError {
	var first, found *pem.Block
	for rest := keyPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if first == nil {
			first = block
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			found = block
			break
		}
	}
	switch {
	case first == nil:
		return key.badPEM(pemProblem(keyPEM, "PRIVATE KEY"))
	case found == nil:
		return key.bad(fmt.Sprintf("holds a %q PEM block, not a private key", first.Type), key.accepts(key.holds))
	case found.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(found.Headers["Proc-Type"], "ENCRYPTED"):
		return key.bad("holds an encrypted private key, which the worker cannot decrypt",
			key.accepts(key.holds+", unencrypted")+" (openssl pkey -in encrypted.key -out plain.key decrypts it)")
	}
	return key.bad("does not hold the private key of the certificate in "+cert.name()+" ("+err.Error()+")",
		key.accepts("the private key of the certificate in "+cert.name()))
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
