// Package pki makes the certificates a small Kubernetes cluster needs: one
// CA, serving and client certificates signed by it, and kubeconfigs that
// carry a client certificate. The lab's control plane and the tests' use it.
package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Validity of everything issued: a lab or a test lives hours, not days.
const Validity = 7 * 24 * time.Hour

// CA signs certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *rsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a self-signed CA.
func NewCA(cn string) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(Validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// KeyPEM is the CA's private key, PEM-encoded.
func (ca *CA) KeyPEM() []byte { return keyPEM(ca.Key) }

// Issue signs a certificate for cn in groups (the organisations Kubernetes
// reads as groups), valid for the names and addresses given.
func (ca *CA) Issue(cn string, groups, dns []string, ips []net.IP, usage ...x509.ExtKeyUsage) (certPEM, keyPEMOut []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(Validity),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: usage,
		DNSNames: dns, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", cn, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM(key), nil
}

// WriteKubeconfig writes a kubeconfig for user in groups that talks to
// server, trusting the CA.
func (ca *CA) WriteKubeconfig(path, server, user string, groups []string) error {
	certPEM, key, err := ca.Issue(user, groups, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["podpath"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.CertPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: key}
	cfg.Contexts["podpath"] = &clientcmdapi.Context{Cluster: "podpath", AuthInfo: user}
	cfg.CurrentContext = "podpath"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// RSAKey makes a key, PEM-encoded (a service account signing key).
func RSAKey() ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return keyPEM(key), nil
}

// WritePair writes a certificate and its key as path.crt and path.key.
func WritePair(path string, certPEM, key []byte) error {
	if err := os.WriteFile(path+".crt", certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(path+".key", key, 0o600)
}

func keyPEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}
