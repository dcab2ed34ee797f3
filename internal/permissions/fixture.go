// Package permissions proves the users of the repository's nats.conf: for each role (worker,
// api, raiser, publisher) it tries what the role must be able to do, end to end, and what it
// must not, which the server must refuse. The checks run against a real NATS server started
// from nats-tls.conf (nats.conf with TLS) with certificates and passwords made for the run:
// in-process in this package's test (make test), and as a nats-server process in
// `make prove-permissions` (cmd/jetflow-permissions).
package permissions

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/bcrypt"
)

// Roles are the users nats.conf defines.
var Roles = []string{"worker", "api", "raiser", "publisher"}

// ConfFiles are the repository's configuration files a server of the fixture reads, relative to
// the repository's root: nats-tls.conf includes nats.conf.
var ConfFiles = []string{"nats.conf", "nats-tls.conf"}

// Fixture is a directory holding what a server started from nats-tls.conf and the checks need:
// copies of the configuration files, a configuration that includes them and listens on
// 127.0.0.1, certificates, and each role's password.
type Fixture struct {
	Dir   string
	Conf  string // the server's configuration file
	Certs Certs
	// Passwords are the roles' plain passwords; the server is given their bcrypt hashes.
	Passwords map[string]string
	// ServerEnv holds the variables the configuration reads: set them in the server's
	// environment.
	ServerEnv map[string]string
}

// NewFixture prepares dir for a server whose configuration is repo's nats-tls.conf, listening
// for clients on 127.0.0.1:port (-1: any free port) without monitoring.
func NewFixture(dir, repo string, port int) (*Fixture, error) {
	for _, name := range ConfFiles {
		b, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	f := &Fixture{Dir: dir, Conf: filepath.Join(dir, "server.conf"), Passwords: map[string]string{}}
	conf := fmt.Sprintf("# Written by internal/permissions: the repository's nats-tls.conf on a loopback port.\n"+
		"include \"nats-tls.conf\"\nlisten: \"127.0.0.1:%s\"\nhttp_port: 0\n", strconv.Itoa(port))
	if err := os.WriteFile(f.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var err error
	if f.Certs, err = GenerateCerts(dir); err != nil {
		return nil, err
	}
	f.ServerEnv = map[string]string{
		"NATS_SERVER_NAME": "jetflow-permissions", "NATS_STORE_DIR": quote(filepath.Join(dir, "store")),
		"NATS_MAX_MEMORY_STORE": "64MB", "NATS_MAX_FILE_STORE": "1GB",
		"NATS_SERVER_CERT": quote(f.Certs.ServerCert), "NATS_SERVER_KEY": quote(f.Certs.ServerKey),
		"NATS_SERVER_CA": quote(f.Certs.CA),
	}
	for _, role := range Roles {
		pw, hash, err := newPassword()
		if err != nil {
			return nil, err
		}
		f.Passwords[role] = pw
		f.ServerEnv[PasswordVar(role)] = hash
	}
	return f, nil
}

// PasswordVar is the variable nats.conf reads role's bcrypt password hash from, e.g.
// NATS_WORKER_PASSWORD_HASH.
func PasswordVar(role string) string {
	b := []byte(role)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return "NATS_" + string(b) + "_PASSWORD_HASH"
}

// newPassword returns a random password and its bcrypt hash.
func newPassword() (string, string, error) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	pw := hex.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		return "", "", err
	}
	return pw, string(hash), nil
}

// quote makes a path a quoted string of the configuration language, as the variables of paths
// must be (an unquoted value is parsed as a number, a size or a bare word).
func quote(path string) string { return strconv.Quote(path) }
