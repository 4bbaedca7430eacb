// Package tlsutil owns gavel's mutual-TLS material: a small certificate
// authority, the certificates it issues to components, the on-disk layout
// that `gavel certs` and `gavel dev` share, and the tls.Config values every
// gRPC server and client is built from.
//
// Keys are ECDSA P-256: fast handshakes, small certificates and supported by
// every TLS stack gavel talks to (grpc-go, etcd, Envoy).
package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Usage says which side of a TLS handshake an issued certificate may play.
type Usage int

const (
	// ServerAndClient certificates serve and dial. Every gavel component is
	// both (the rep serves the auctioneer and dials the BBS), so this is the
	// zero value.
	ServerAndClient Usage = iota
	// Server certificates may only be presented by a server.
	Server
	// Client certificates may only be presented by a client.
	Client
)

// String names the usage for errors and command output.
func (u Usage) String() string {
	switch u {
	case ServerAndClient:
		return "server-and-client"
	case Server:
		return "server"
	case Client:
		return "client"
	default:
		return fmt.Sprintf("Usage(%d)", int(u))
	}
}

func (u Usage) extKeyUsage() ([]x509.ExtKeyUsage, error) {
	switch u {
	case ServerAndClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	case Server:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
	case Client:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	default:
		return nil, fmt.Errorf("unknown certificate usage %d", int(u))
	}
}

// clockSkew backdates NotBefore so a certificate issued on one machine is
// already valid on a peer whose clock runs slightly behind.
const clockSkew = 5 * time.Minute

// CA is a certificate authority able to issue component certificates.
// Cert and Key are the parsed forms of CertPEM and KeyPEM.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// GenerateCA creates a self-signed CA with a fresh P-256 key.
func GenerateCA(commonName string, validFor time.Duration) (*CA, error) {
	if validFor <= 0 {
		return nil, fmt.Errorf("generate CA %q: validity must be positive, got %s", commonName, validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA %q key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("generate CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"gavel"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only; an intermediate would let a leaked
		// component key mint further CAs.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		// SubjectKeyId is left for crypto/x509 to derive (it does so for
		// CAs); leaves then carry it as their AuthorityKeyId.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("generate CA %q: sign: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("generate CA %q: parse: %w", commonName, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("generate CA %q: %w", commonName, err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// LoadCA reads a CA written by GenerateCA (or any CA certificate with an
// ECDSA, RSA or Ed25519 key in PKCS#8, SEC 1 or PKCS#1 PEM form).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s and %s: %w", certFile, keyFile, err)
	}
	return ca, nil
}

// ParseCA is LoadCA from PEM bytes. It checks that the certificate is a CA
// and that the key belongs to it, so a mismatched pair fails here rather
// than as a handshake error on some other machine later.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certificate %q is not a CA", cert.Subject.CommonName)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("private key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Issue signs a new certificate for commonName with a fresh P-256 key.
// Each host becomes an IP or DNS subject alternative name, which is what
// verifiers check (the common name is informational only). The validity is
// cut at the CA's own expiry: a leaf outliving its CA would never verify.
func (ca *CA) Issue(commonName string, hosts []string, usage Usage, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("issue %q: validity must be positive, got %s", commonName, validFor)
	}
	eku, err := usage.extKeyUsage()
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: %w", commonName, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: generate key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: %w", commonName, err)
	}
	now := time.Now()
	notAfter := now.Add(validFor)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"gavel"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		// ECDSA keys sign the handshake; they never encipher keys, so
		// KeyEncipherment (an RSA-only usage) is deliberately absent.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if h == "" {
			return nil, nil, fmt.Errorf("issue %q: empty host", commonName)
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: sign: %w", commonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %q: %w", commonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// randomSerial returns a positive 128-bit serial; RFC 5280 allows up to 20
// octets and randomness keeps serials unique without any shared counter.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("random serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no CERTIFICATE PEM block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s holds a %T, which cannot sign", block.Type, key)
		}
		return signer, nil
	}
}
