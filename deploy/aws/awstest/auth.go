package awstest

import (
	"fmt"
	"net/http"
	"strings"
)

// The fake checks who signed a request, not the signature: it reads the
// access key, region and service of the SigV4 credential scope (from the
// Authorization header, or the X-Amz-Credential of a presigned URL) and
// the session token, and refuses as each service does a request that is
// unsigned, signed with a key it does not know or a token that does not
// go with the key, or scoped to another region or service. Recomputing
// the signature would tie the fake to every detail of the SDK's
// canonical request (S3's chunked payloads, unsigned payloads, header
// normalisation) to catch a bug the SDK's own signer does not have.

// credentialScope is what a SigV4 signature says about its signer.
type credentialScope struct {
	accessKeyID string
	date        string
	region      string
	service     string
	token       string
}

// parseScope reads the credential scope of r; ok is false when r is not
// signed with SigV4.
func parseScope(r *http.Request) (scope credentialScope, ok bool) {
	var credential string
	if auth := r.Header.Get("Authorization"); auth != "" {
		alg, rest, _ := strings.Cut(auth, " ")
		if alg != "AWS4-HMAC-SHA256" {
			return scope, false
		}
		for _, part := range strings.Split(rest, ",") {
			if v, found := strings.CutPrefix(strings.TrimSpace(part), "Credential="); found {
				credential = v
			}
		}
		scope.token = r.Header.Get("X-Amz-Security-Token")
	} else if q := r.URL.Query(); q.Get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" {
		credential = q.Get("X-Amz-Credential")
		scope.token = q.Get("X-Amz-Security-Token")
	}
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" {
		return scope, false
	}
	scope.accessKeyID, scope.date, scope.region, scope.service = parts[0], parts[1], parts[2], parts[3]
	return scope, true
}

// signingService is the service r's signature is scoped to, or "".
func signingService(r *http.Request) string {
	scope, _ := parseScope(r)
	return scope.service
}

// authenticate sets req.who from its signature, or answers why the
// service refuses it.
func (f *Fake) authenticate(req *request) *apiError {
	scope, ok := parseScope(req.r)
	if !ok {
		return authError(req.service, authMissing, scope, f.region)
	}
	f.mu.Lock()
	sess := f.sessions[scope.accessKeyID]
	f.mu.Unlock()
	switch {
	case scope.accessKeyID == AccessKeyID && scope.token == "":
		req.who = principal{accessKeyID: AccessKeyID, arn: UserARN, userID: "AIDASLIPWAYTESTUSER1"}
	case scope.accessKeyID == AccessKeyID:
		return authError(req.service, authBadToken, scope, f.region)
	case sess != nil && scope.token == sess.token:
		req.who = principal{accessKeyID: sess.accessKeyID, arn: sess.arn, userID: sess.userID}
	case sess != nil:
		return authError(req.service, authBadToken, scope, f.region)
	default:
		return authError(req.service, authUnknownKey, scope, f.region)
	}
	if scope.region != f.region {
		return authError(req.service, authWrongRegion, scope, f.region)
	}
	if req.service != "" && scope.service != req.service {
		return authError(req.service, authWrongService, scope, f.region)
	}
	return nil
}

type authProblem int

const (
	authMissing authProblem = iota
	authUnknownKey
	authBadToken
	authWrongRegion
	authWrongService
)

// authError is how service, in region, refuses a request for problem.
func authError(service string, problem authProblem, scope credentialScope, region string) *apiError {
	const invalidToken = "The security token included in the request is invalid."
	const regionMsg = "Credential should be scoped to a valid region. "
	serviceMsg := fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service)
	switch service {
	case S3:
		switch problem {
		case authMissing:
			return &apiError{status: http.StatusForbidden, code: "AccessDenied", message: "Access Denied"}
		case authUnknownKey:
			return &apiError{status: http.StatusForbidden, code: "InvalidAccessKeyId",
				message: "The AWS Access Key Id you provided does not exist in our records.",
				fields:  [][2]string{{"AWSAccessKeyId", scope.accessKeyID}}}
		case authBadToken:
			return &apiError{status: http.StatusBadRequest, code: "InvalidToken",
				message: "The provided token is malformed or otherwise invalid."}
		case authWrongRegion:
			return &apiError{status: http.StatusBadRequest, code: "AuthorizationHeaderMalformed",
				message: fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", scope.region, region),
				fields:  [][2]string{{"Region", region}}}
		default:
			return &apiError{status: http.StatusBadRequest, code: "AuthorizationHeaderMalformed",
				message: fmt.Sprintf("The authorization header is malformed; incorrect service \"%s\". This endpoint belongs to \"s3\".", scope.service)}
		}
	case STS, Beanstalk:
		switch problem {
		case authMissing:
			return &apiError{status: http.StatusForbidden, code: "MissingAuthenticationToken", message: "Request is missing Authentication Token"}
		case authUnknownKey, authBadToken:
			return &apiError{status: http.StatusForbidden, code: "InvalidClientTokenId", message: invalidToken}
		case authWrongRegion:
			return &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", message: regionMsg}
		default:
			return &apiError{status: http.StatusForbidden, code: "SignatureDoesNotMatch", message: serviceMsg}
		}
	case Lambda:
		switch problem {
		case authMissing:
			return &apiError{status: http.StatusForbidden, code: "MissingAuthenticationTokenException", message: "Missing Authentication Token"}
		case authUnknownKey, authBadToken:
			return &apiError{status: http.StatusForbidden, code: "UnrecognizedClientException", message: invalidToken}
		case authWrongRegion:
			return &apiError{status: http.StatusForbidden, code: "InvalidSignatureException", message: regionMsg}
		default:
			return &apiError{status: http.StatusForbidden, code: "InvalidSignatureException", message: serviceMsg}
		}
	default: // ECR and the requests that matched no service, in awsJson
		switch problem {
		case authMissing:
			return &apiError{status: http.StatusBadRequest, code: "MissingAuthenticationTokenException", message: "Missing Authentication Token"}
		case authUnknownKey, authBadToken:
			return &apiError{status: http.StatusBadRequest, code: "UnrecognizedClientException", message: invalidToken}
		case authWrongRegion:
			return &apiError{status: http.StatusBadRequest, code: "InvalidSignatureException", message: regionMsg}
		default:
			return &apiError{status: http.StatusBadRequest, code: "InvalidSignatureException", message: serviceMsg}
		}
	}
}
