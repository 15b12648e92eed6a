package forgetest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("forgetest: generate key: " + err.Error())
	}
	return k
})

// TestKey returns an RSA key for GitHub App tests, made once per test
// binary (rather than kept in the repository, where a private key is
// never welcome, even a test's).
func TestKey() *rsa.PrivateKey { return testKey() }

// TestKeyPEM returns TestKey as GitHub hands an App's private key out:
// PKCS #1, PEM-encoded.
func TestKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(TestKey())})
}

// AddApp installs a GitHub App: POST /app/installations/{installationID}/
// access_tokens then issues tokens to requests bearing a JWT signed with
// key's private half whose issuer is appID.
func (s *Server) AddApp(appID, installationID int64, key *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[installationID] = app{id: appID, key: key}
}

// IssuedTokens returns how many installation tokens the fake issued.
func (s *Server) IssuedTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

func (s *Server) postAccessToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	a, ok := s.apps[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if err := verifyJWT(jwt, a, time.Now()); err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return
	}
	s.mu.Lock()
	tok := "ghs_" + randomHex(18)
	exp := time.Now().Add(s.tokenTTL).UTC().Truncate(time.Second)
	s.tokens[tok] = exp
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                tok,
		"expires_at":           exp.Format(time.RFC3339),
		"permissions":          map[string]string{"contents": "read", "statuses": "write", "deployments": "write", "metadata": "read"},
		"repository_selection": "all",
	})
}

// verifyJWT checks an App's JWT as GitHub does: RS256 signed by the App's
// key, issued by the App, issued in the past and expiring in the next ten
// minutes.
func verifyJWT(token string, a app, now time.Time) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat int64           `json:"iat"`
		Exp int64           `json:"exp"`
	}
	for i, v := range []any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("part %d: %w", i, err)
		}
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("alg %q, want RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(a.key, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	// GitHub takes the issuer as a number or a string.
	iss := strings.Trim(string(claims.Iss), `"`)
	if iss != strconv.FormatInt(a.id, 10) {
		return fmt.Errorf("issuer %s, want %d", iss, a.id)
	}
	iat, exp := time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0)
	switch {
	case iat.After(now.Add(time.Minute)):
		return errors.New("'Issued at' claim (iat) must be an Integer representing a time in the past")
	case !exp.After(now):
		return errors.New("'Expiration time' claim ('exp') is too far in the past")
	case exp.Sub(iat) > 10*time.Minute:
		return errors.New("'Expiration time' claim ('exp') is too far in the future")
	}
	return nil
}
