package redisconn

import (
	"context"
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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/redisconn/redistest"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func ping(t *testing.T, c redis.UniversalClient) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func open(t *testing.T, c Config) redis.UniversalClient {
	t.Helper()
	cl, err := Open(c)
	if err != nil {
		t.Fatalf("Open(%+v): %v", c, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenErrors(t *testing.T) {
	noPEM := write(t, "ca.pem", "not a certificate\n")
	for _, tc := range []struct {
		name string
		c    Config
		want string // in the error
	}{
		{"no address", Config{}, "no address"},
		{"bad address", Config{Address: "localhost"}, `"localhost"`},
		{"sentinels without master", Config{Sentinels: []string{"127.0.0.1:26379"}}, "master name"},
		{"master without sentinels", Config{Address: "127.0.0.1:6379", MasterName: "m"}, "needs sentinels"},
		{"missing password file", Config{Address: "127.0.0.1:6379", PasswordFile: "/nonexistent/redis.pass"}, "/nonexistent/redis.pass"},
		{"missing CA file", Config{Address: "127.0.0.1:6379", TLS: true, CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{"CA file without PEM", Config{Address: "127.0.0.1:6379", TLS: true, CAFile: noPEM}, noPEM},
		{"CA file without TLS", Config{Address: "127.0.0.1:6379", CAFile: noPEM}, "without TLS"},
		{"TLS over a unix socket", Config{Address: "/run/redis/redis.sock", TLS: true}, "unix socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(tc.c)
			if err == nil {
				c.Close()
				t.Fatalf("Open(%+v): no error", tc.c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%+v) = %v, want it to name %s", tc.c, err, tc.want)
			}
		})
	}
}

// The daemon starts while Redis is down: Open succeeds, commands fail, and
// they work once a server listens there.
func TestOpenWithoutServer(t *testing.T) {
	if !redistest.Available() && os.Getenv("MAILJAIL_E2E") != "1" {
		t.Skip("redis-server is not installed")
	}
	port := redistest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := open(t, Config{Address: addr, Timeout: 500 * time.Millisecond})
	if err := ping(t, c); err == nil {
		t.Fatal("PING answered with nothing listening")
	}
	redistest.Start(t, "--port", strconv.Itoa(port))
	if err := ping(t, c); err != nil {
		t.Fatalf("PING after the server started: %v", err)
	}
}

func TestPasswordFile(t *testing.T) {
	s := redistest.Start(t, "--requirepass", "s3cret")
	ok := write(t, "pass", "s3cret\n")
	if err := ping(t, open(t, Config{Address: s.Addr, PasswordFile: ok})); err != nil {
		t.Fatalf("password from a file with a trailing newline: %v", err)
	}
	if err := ping(t, open(t, Config{Address: s.Addr, Password: "s3cret"})); err != nil {
		t.Fatalf("password: %v", err)
	}
	// The file wins over the inline password.
	if err := ping(t, open(t, Config{Address: s.Addr, Password: "s3cret", PasswordFile: write(t, "bad", "wrong\n")})); err == nil {
		t.Fatal("a wrong password from the file was accepted")
	}
}

func TestACLUserAndDB(t *testing.T) {
	s := redistest.Start(t, "--user", "mailjail", "on", ">pw", "~mailjail_*", "+@all")
	c := open(t, Config{Address: s.Addr, Username: "mailjail", Password: "pw", DB: 3})
	ctx := context.Background()
	if err := c.HSet(ctx, "mailjail_bans", "192.0.2.1", "x").Err(); err != nil {
		t.Fatalf("HSET as the ACL user: %v", err)
	}
	if err := c.Set(ctx, "other", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("a key outside the user's pattern: %v, want NOPERM", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: s.Addr, Username: "mailjail", Password: "pw", DB: 3, DisableIdentity: true})
	defer plain.Close()
	if n, err := plain.HLen(ctx, "mailjail_bans").Result(); err != nil || n != 1 {
		t.Fatalf("HLEN in DB 3 = %d, %v; want 1", n, err)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	if err := ping(t, open(t, Config{Address: sock})); err != nil {
		t.Fatalf("PING over %s: %v", sock, err)
	}
}

// A server that accepts and never answers fails a command within the
// timeout, not after the default one.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := open(t, Config{Address: l.Addr().String(), Timeout: 100 * time.Millisecond})
	start := time.Now()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING answered by a silent server")
	}
	// go-redis retries a timed-out read a few times with backoff.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("PING to a silent server took %s with a 100ms timeout", d)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := certificates(t, dir)
	port := strconv.Itoa(redistest.FreePort(t))
	s := redistest.Start(t, "--tls-port", port, "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no")
	if err := ping(t, open(t, Config{Address: s.Addr, TLS: true, CAFile: ca})); err != nil {
		t.Fatalf("PING over TLS with the CA: %v", err)
	}
	err := ping(t, open(t, Config{Address: s.Addr, TLS: true, Timeout: time.Second}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PING over TLS without the CA: %v, want a certificate error", err)
	}
}

func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	conf := write(t, "sentinel.conf", "sentinel monitor jail "+host+" "+port+" 1\n")
	sentinel := redistest.Start(t, conf, "--sentinel")
	c := open(t, Config{Sentinels: []string{sentinel.Addr}, MasterName: "jail"})
	redistest.Ping(t, c)
	ctx := context.Background()
	if err := c.HSet(ctx, "mailjail_bans", "192.0.2.1", "x").Err(); err != nil {
		t.Fatalf("HSET through the sentinel: %v", err)
	}
	if n, err := master.Client(t).HLen(ctx, "mailjail_bans").Result(); err != nil || n != 1 {
		t.Fatalf("HLEN on the master = %d, %v; want 1", n, err)
	}
}

// certificates writes a CA and a server certificate for 127.0.0.1 signed
// by it: ca, cert and key file paths.
func certificates(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailjail test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return put("ca.pem", "CERTIFICATE", caDER), put("server.pem", "CERTIFICATE", srvDER), put("server.key", "EC PRIVATE KEY", keyDER)
}
