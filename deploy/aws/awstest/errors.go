package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an error answer, written in the form of the request's
// service by writeError.
type apiError struct {
	status  int
	code    string
	message string
	// fields are more elements of an S3 error (BucketName, Key...), in
	// order, or more members of a Lambda error (Reason...).
	fields [][2]string
	// retryAfter is the Retry-After header of a throttled Lambda call.
	retryAfter int
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// notModeled answers an operation the fake does not model: the SDK does
// not retry a 501, and the message says what is missing.
func notModeled(service, op string) *apiError {
	return &apiError{status: http.StatusNotImplemented, code: "NotImplemented",
		message: fmt.Sprintf("awstest: %s %s is not modeled by the fake", service, op)}
}

// The namespaces of the query protocols' XML answers.
const (
	stsNamespace       = "https://sts.amazonaws.com/doc/2011-06-15/"
	beanstalkNamespace = "http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/"
)

// writeError answers aerr in the form of req's service.
func writeError(w http.ResponseWriter, req *request, aerr *apiError) {
	switch req.service {
	case Lambda:
		// restJson1: the type in X-Amzn-ErrorType, the members in the
		// body, with the case of the model ("Message" for a few errors).
		body := map[string]any{"Type": "User"}
		if aerr.status >= 500 {
			body["Type"] = "Service"
		}
		switch aerr.code {
		case "ResourceNotFoundException", "ServiceException", "ResourceInUseException":
			body["Message"] = aerr.message
		default:
			body["message"] = aerr.message
		}
		for _, kv := range aerr.fields {
			body[kv[0]] = kv[1]
		}
		w.Header().Set("X-Amzn-ErrorType", aerr.code)
		if aerr.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(aerr.retryAfter))
		}
		writeJSON(w, req, aerr.status, "application/json", body)
	case STS, Beanstalk:
		ns := beanstalkNamespace
		if req.service == STS {
			ns = stsNamespace
		}
		typ := "Sender"
		if aerr.status >= 500 {
			typ = "Receiver"
		}
		writeXML(w, req, aerr.status, queryErrorResponse{
			Xmlns:     ns,
			Error:     queryError{Type: typ, Code: aerr.code, Message: aerr.message},
			RequestID: req.id,
		})
	case S3:
		w.Header().Set("X-Amz-Request-Id", req.id)
		w.Header().Set("X-Amz-Id-2", hostID)
		if req.r.Method == http.MethodHead {
			// HEAD answers have no body: the SDK makes the error of the
			// status alone (NotFound for 404).
			w.WriteHeader(aerr.status)
			return
		}
		e := s3Error{Code: aerr.code, Message: aerr.message, RequestID: req.id, HostID: hostID}
		for _, kv := range aerr.fields {
			e.Fields = append(e.Fields, xmlField{XMLName: xml.Name{Local: kv[0]}, Value: kv[1]})
		}
		writeXML(w, req, aerr.status, e)
	default:
		// awsJson1_1 (ECR, and requests that matched no service).
		body := map[string]any{"__type": aerr.code}
		if aerr.message != "" {
			body["message"] = aerr.message
		}
		writeJSON(w, req, aerr.status, "application/x-amz-json-1.1", body)
	}
}

// hostID is S3's x-amz-id-2, the same for every answer of the fake.
const hostID = "c2xpcHdheS1hd3N0ZXN0LWZha2UtaG9zdC1pZA=="

type queryErrorResponse struct {
	XMLName   xml.Name   `xml:"ErrorResponse"`
	Xmlns     string     `xml:"xmlns,attr"`
	Error     queryError `xml:"Error"`
	RequestID string     `xml:"RequestId"`
}

type queryError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type s3Error struct {
	XMLName   xml.Name   `xml:"Error"`
	Code      string     `xml:"Code"`
	Message   string     `xml:"Message"`
	Fields    []xmlField `xml:",any"`
	RequestID string     `xml:"RequestId"`
	HostID    string     `xml:"HostId"`
}

type xmlField struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

// writeXML answers v as XML with status.
func writeXML(w http.ResponseWriter, req *request, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("awstest: encoding %T: %v", v, err))
	}
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "text/xml")
	if req.service != S3 {
		w.Header().Set("X-Amzn-RequestId", req.id)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// queryResponse is the envelope of a query protocol's answer:
// <OpResponse><OpResult>...</OpResult><ResponseMetadata>...</OpResponse>.
type queryResponse struct {
	XMLName  xml.Name
	Xmlns    string           `xml:"xmlns,attr"`
	Result   any              `xml:",omitempty"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

// writeQueryResult answers result, whose XMLName must be <Op>Result, in
// the envelope of req's service.
func writeQueryResult(w http.ResponseWriter, req *request, result any) {
	ns := beanstalkNamespace
	if req.service == STS {
		ns = stsNamespace
	}
	writeXML(w, req, http.StatusOK, queryResponse{
		XMLName:  xml.Name{Local: req.op + "Response"},
		Xmlns:    ns,
		Result:   result,
		Metadata: responseMetadata{RequestID: req.id},
	})
}
