package listener

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// Telegraf's testutil/pki holds fixed certificates that expire in 2032 and
// are reachable only by a path into Telegraf's own source tree, so these
// tests make a throwaway PKI instead, valid around the current time.

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := certTemplate(t, name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue signs a leaf certificate for usage and writes NAME.pem and
// NAME-key.pem; it returns the two paths and the pair for a client.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := certTemplate(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return certFile, keyFile, pair
}

func certTemplate(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	now := time.Now() // crypto/tls checks validity against the real clock
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
	}
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, all from that CA, plus a client certificate from a CA the
// server does not know.
type testPKI struct {
	ca                    *testCA
	serverCert, serverKey string
	client, stranger      tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{ca: newTestCA(t, dir, "ca")}
	p.serverCert, p.serverKey, _ = p.ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	_, _, p.client = p.ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	other := newTestCA(t, dir, "other-ca")
	_, _, p.stranger = other.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)
	return p
}

// httpsClient trusts the test CA and presents cert, if given, whatever CAs
// the server asks for (crypto/tls would otherwise withhold a certificate
// the server cannot verify, and the server's check would go untested).
func (p *testPKI) httpsClient(t *testing.T, cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: p.ca.pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: conf}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// httpsLegacyURL is the listener's legacy endpoint over TLS.
func (l *Listener) httpsLegacyURL() string { return "https://" + l.Addr().String() + legacyPath }

// tlsPost posts tlsBody to url with client and returns the answer or the
// transport error.
func tlsPost(t *testing.T, client *http.Client, url string) (answer, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(tlsBody)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	return doWith(t, client, req)
}

const tlsBody = `{"source":"web1","gauges":[{"name":"cpu.user","value":12.5}],"counters":[{"name":"jobs.done","value":7,"measure_time":1699999990}]}`

func tlsBodyMetrics() []telegraf.Metric {
	return []telegraf.Metric{
		metric.New("cpu.user", map[string]string{"source": "web1"}, map[string]any{"value": 12.5}, receiveTime, telegraf.Gauge),
		metric.New("jobs.done", map[string]string{"source": "web1"}, map[string]any{"value": 7.0}, time.Unix(1699999990, 0), telegraf.Counter),
	}
}

// TestTLS: with tls_cert and tls_key the listener speaks HTTPS only, and a
// client that trusts the CA delivers.
func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	acc := &ackAcc{}
	l := start(t, acc, func(l *Listener) {
		l.TLSCert = p.serverCert
		l.TLSKey = p.serverKey
	})

	t.Run("plain http is not served", func(t *testing.T) {
		a, err := tlsPost(t, http.DefaultClient, l.url(legacyPath))
		if err == nil {
			// net/http answers a plain request on a TLS socket itself,
			// without calling the handler.
			require.Equal(t, http.StatusBadRequest, a.status, a.body)
		}
		require.Empty(t, acc.metrics())
		require.Zero(t, l.stats.requests.Get(), "the handler saw the plain request")
	})

	t.Run("untrusted server certificate is refused by the client", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}} // system roots only
		t.Cleanup(tr.CloseIdleConnections)
		_, err := tlsPost(t, &http.Client{Transport: tr}, l.httpsLegacyURL())
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown)
		require.Empty(t, acc.metrics())
	})

	t.Run("https delivers", func(t *testing.T) {
		a, err := tlsPost(t, p.httpsClient(t, nil), l.httpsLegacyURL())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.status, a.body)
		require.Equal(t, "{}", a.body)
		testutil.RequireMetricsEqual(t, tlsBodyMetrics(), acc.metrics(), testutil.SortMetrics())
	})

	// Without tls_allowed_cacerts a client certificate is not asked for,
	// so presenting one changes nothing.
	t.Run("client certificate not required", func(t *testing.T) {
		acc.mu.Lock()
		acc.kept = nil
		acc.mu.Unlock()
		a, err := tlsPost(t, p.httpsClient(t, &p.stranger), l.httpsLegacyURL())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.status, a.body)
		require.Len(t, acc.metrics(), 2)
	})
}

// TestTLSClientCertificates: with tls_allowed_cacerts only clients with a
// certificate from those CAs get past the handshake.
func TestTLSClientCertificates(t *testing.T) {
	p := newTestPKI(t)
	acc := &ackAcc{}
	l := start(t, acc, func(l *Listener) {
		l.TLSCert = p.serverCert
		l.TLSKey = p.serverKey
		l.TLSAllowedCACerts = []string{p.ca.file}
	})

	refused := []struct {
		name string
		cert *tls.Certificate
	}{
		{"no client certificate", nil},
		{"certificate from another CA", &p.stranger},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := tlsPost(t, p.httpsClient(t, c.cert), l.httpsLegacyURL())
			require.Error(t, err)
			// The server's TLS alert, not an HTTP answer: the request
			// never reached the handler.
			var opErr *net.OpError
			require.ErrorAs(t, err, &opErr)
			require.Equal(t, "remote error", opErr.Op, "%v", err)
			require.Empty(t, acc.metrics())
			require.Zero(t, l.stats.requests.Get())
		})
	}

	t.Run("client certificate from the allowed CA delivers", func(t *testing.T) {
		a, err := tlsPost(t, p.httpsClient(t, &p.client), l.httpsLegacyURL())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.status, a.body)
		testutil.RequireMetricsEqual(t, tlsBodyMetrics(), acc.metrics(), testutil.SortMetrics())
	})
}

// TestInitRejectsIncompleteTLS: common_tls builds a TLS config without a
// server certificate when tls_key (or tls_cert) is missing, or when only
// tls_allowed_cacerts is set; such a listener would start and then fail
// every handshake, so Init refuses it.
func TestInitRejectsIncompleteTLS(t *testing.T) {
	p := newTestPKI(t)
	for name, configure := range map[string]func(*Listener){
		"cert without key":        func(l *Listener) { l.TLSCert = p.serverCert },
		"key without cert":        func(l *Listener) { l.TLSKey = p.serverKey },
		"client CAs without cert": func(l *Listener) { l.TLSAllowedCACerts = []string{p.ca.file} },
	} {
		t.Run(name, func(t *testing.T) {
			l := New()
			configure(l)
			require.ErrorContains(t, l.Init(), "tls_cert")
		})
	}
}
