// Package agenttest makes certificates for tests of the quota agent.
package agenttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a CA and the PEM of a certificate and key it signed.
type PKI struct {
	CAPEM []byte
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// Pair is one certificate and its key, PEM.
type Pair struct{ CertPEM, KeyPEM []byte }

// NewPKI makes a fresh CA.
func NewPKI(name string) (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &PKI{CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, caKey: key}, nil
}

// Server signs a server certificate for 127.0.0.1, localhost and names
// (host names or IP addresses).
func (p *PKI) Server(names ...string) (Pair, error) {
	return p.sign("nfs-csi-agent", x509.ExtKeyUsageServerAuth, append([]string{"localhost"}, names...))
}

// Client signs a client certificate.
func (p *PKI) Client(cn string) (Pair, error) {
	return p.sign(cn, x509.ExtKeyUsageClientAuth, nil)
}

func (p *PKI) sign(cn string, usage x509.ExtKeyUsage, names []string) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	var dnsNames []string
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return Pair{}, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}),
	}, nil
}

// Write stores the pair as dir/name.crt and dir/name.key and returns the paths.
func (pr Pair) Write(dir, name string) (cert, key string, err error) {
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err = os.WriteFile(cert, pr.CertPEM, 0o600); err == nil {
		err = os.WriteFile(key, pr.KeyPEM, 0o600)
	}
	return cert, key, err
}

// AgentFiles makes a fresh CA and writes into dir what the agent's flags
// name: a server certificate and key it signed (--tls-cert, --tls-key) and
// the CA (--client-ca), which also signs the clients' certificates.
func AgentFiles(dir string) (p *PKI, cert, key, ca string, err error) {
	if p, err = NewPKI("nfs-csi-agent-ca"); err != nil {
		return nil, "", "", "", err
	}
	srv, err := p.Server()
	if err != nil {
		return nil, "", "", "", err
	}
	if cert, key, err = srv.Write(dir, "agent"); err != nil {
		return nil, "", "", "", err
	}
	ca = filepath.Join(dir, "client-ca.crt")
	return p, cert, key, ca, os.WriteFile(ca, p.CAPEM, 0o600)
}
