package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herald-sse/herald/hub"
)

// The development certificate of -dev-tls.
const (
	// devTLSDir is its directory in the data directory.
	devTLSDir = "dev-tls"
	// devCertValidity is how long a new one is valid: long enough that a
	// person trusts it once for a year of local work.
	devCertValidity = 365 * 24 * time.Hour
	// devCertRenewal is how long before its end a certificate is replaced
	// at start, rather than reused: a hub started on its last day would
	// otherwise fail its clients mid-session.
	devCertRenewal = 7 * 24 * time.Hour
)

// devCert is the development certificate, with what a client needs to
// trust it.
type devCert struct {
	certPath, keyPath string // absolute
	pair              tls.Certificate
	notAfter          time.Time
	created           bool   // made at this start, rather than reused
	spki              string // the base64 SHA-256 of its public key (SubjectPublicKeyInfo), as Chromium takes it
}

// devCertHosts are the names the development certificate is valid for.
var devCertHosts = []string{"localhost", "127.0.0.1", "::1"}

// loadDevCert returns the development certificate in dataDir/dev-tls: the
// one there if it loads and is valid for at least devCertRenewal more,
// else a new one, self-signed (ECDSA P-256) for localhost, 127.0.0.1 and
// ::1, written there (the key readable by its owner only).
func loadDevCert(dataDir string, now time.Time) (*devCert, error) {
	dir, err := filepath.Abs(filepath.Join(dataDir, devTLSDir))
	if err != nil {
		return nil, fmt.Errorf("dev-tls: %w", err)
	}
	dc := &devCert{certPath: filepath.Join(dir, "cert.pem"), keyPath: filepath.Join(dir, "key.pem")}
	if pair, err := tls.LoadX509KeyPair(dc.certPath, dc.keyPath); err == nil && pair.Leaf != nil &&
		now.After(pair.Leaf.NotBefore) && now.Add(devCertRenewal).Before(pair.Leaf.NotAfter) {
		dc.pair = pair
	} else if err == nil || errors.Is(err, os.ErrNotExist) {
		if err := writeDevCert(dir, dc.certPath, dc.keyPath, now); err != nil {
			return nil, fmt.Errorf("dev-tls: making a certificate in %s: %w", dir, err)
		}
		if dc.pair, err = tls.LoadX509KeyPair(dc.certPath, dc.keyPath); err != nil {
			return nil, fmt.Errorf("dev-tls: %w", err)
		}
		dc.created = true
	} else {
		// Something is there but does not load: a person's files, maybe;
		// not to be overwritten.
		return nil, fmt.Errorf("dev-tls: %s and %s: %w; remove them to have a new certificate made", dc.certPath, dc.keyPath, err)
	}
	dc.notAfter = dc.pair.Leaf.NotAfter
	sum := sha256.Sum256(dc.pair.Leaf.RawSubjectPublicKeyInfo)
	dc.spki = base64.StdEncoding.EncodeToString(sum[:])
	return dc, nil
}

// writeDevCert makes a self-signed certificate and its key, and writes
// them, each through a temporary file renamed into place.
func writeDevCert(dir, certPath, keyPath string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"herald development"}, CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour), // a clock a little behind still takes it
		NotAfter:              now.Add(devCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range devCertHosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// devTLSHelp is how to use the development certificate: with curl, with
// Chromium (trusting this certificate's key only, for browser tests), and
// by adding it to the NSS database that Chromium and Firefox read on Linux,
// or to the system's trust store.
func (dc *devCert) help(base string) (curl, chromium, nss, system string) {
	curl = fmt.Sprintf("curl -N --cacert %s '%s%s?topic=demo'", shellQuote(dc.certPath), base, hub.Path)
	chromium = fmt.Sprintf("chromium --ignore-certificate-errors-spki-list=%s %s/", dc.spki, base)
	nss = fmt.Sprintf("certutil -d sql:$HOME/.pki/nssdb -A -t P,, -n herald-dev -i %s", shellQuote(dc.certPath))
	system = fmt.Sprintf("sudo cp %s /usr/local/share/ca-certificates/herald-dev.crt && sudo update-ca-certificates", shellQuote(dc.certPath))
	return curl, chromium, nss, system
}

// logDevTLS tells where the development certificate is and how to trust
// it: as text a person reads, in text format; as one record in json
// format.
func logDevTLS(logger *slog.Logger, format string, w io.Writer, base string, dc *devCert) {
	curl, chromium, nss, system := dc.help(base)
	made := "reused"
	if dc.created {
		made = "made now"
	}
	if format == "json" {
		logger.Info("development TLS: a self-signed certificate for localhost, 127.0.0.1 and ::1; clients must be told to trust it",
			"cert", dc.certPath, "key", dc.keyPath, "created", dc.created, "not_after", dc.notAfter.UTC().Format(time.RFC3339),
			"spki_sha256", dc.spki, "curl", curl, "chromium", chromium, "nss", nss, "system", system)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nDevelopment TLS: a self-signed certificate for localhost, 127.0.0.1 and ::1 (%s), valid until %s:\n",
		made, dc.notAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "    %s\n", dc.certPath)
	b.WriteString("  Clients must trust it. curl:\n")
	fmt.Fprintf(&b, "    %s\n", curl)
	b.WriteString("  Chromium, trusting this certificate's key only (for browser tests; SHA-256 of its SPKI):\n")
	fmt.Fprintf(&b, "    %s\n", chromium)
	b.WriteString("  Or trust it once, for Chromium and Firefox on Linux (NSS; Firefox profiles have their own database):\n")
	fmt.Fprintf(&b, "    %s\n", nss)
	b.WriteString("  or system-wide (Debian, Ubuntu; Go programs, curl and OpenSSL read it):\n")
	fmt.Fprintf(&b, "    %s\n\n", system)
	_, _ = io.WriteString(w, b.String())
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
