package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testServer is an SMTP server (emersion/go-smtp) on 127.0.0.1:0 that
// records what arrives.
type testServer struct {
	addr string
	mu   sync.Mutex
	msgs []received
	got  chan received
	opt  serverOptions
}

type serverOptions struct {
	startTLS *tls.Config // offer STARTTLS with this
	implicit *tls.Config // TLS from the first byte
	user     string      // require AUTH PLAIN with user and pass
	pass     string
	reject   bool // 554 at MAIL FROM
}

type received struct {
	from string
	to   []string
	data string
	tls  bool
	helo string
	user string
}

func startServer(t *testing.T, opt serverOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), got: make(chan received, 16), opt: opt}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{ts: ts, conn: c}, nil
	}))
	srv.Domain = "relay.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = opt.startTLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if opt.implicit != nil {
		ln = tls.NewListener(ln, opt.implicit)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

// wait returns the next message that arrives.
func (ts *testServer) wait(t *testing.T) received {
	t.Helper()
	select {
	case r := <-ts.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no message arrived")
	}
	return received{}
}

type testSession struct {
	ts   *testServer
	conn *smtp.Conn
	r    received
}

func (s *testSession) AuthMechanisms() []string {
	if s.ts.opt.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.ts.opt.user || pass != s.ts.opt.pass {
			return errors.New("bad credentials")
		}
		s.r.user = user
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.ts.opt.reject {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no alerts from you today"}
	}
	if s.ts.opt.user != "" && s.r.user == "" {
		return smtp.ErrAuthRequired
	}
	s.r.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.to = append(s.r.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.data = string(b)
	_, s.r.tls = s.conn.TLSConnectionState()
	s.r.helo = s.conn.Hostname()
	s.ts.mu.Lock()
	s.ts.msgs = append(s.ts.msgs, s.r)
	s.ts.mu.Unlock()
	s.ts.got <- s.r
	user := s.r.user
	s.r = received{user: user}
	return nil
}

func (s *testSession) Reset() {
	user := s.r.user
	s.r = received{user: user}
}

func (s *testSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost, and writes
// it as PEM to a file (a ca_file that trusts it).
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, path
}
