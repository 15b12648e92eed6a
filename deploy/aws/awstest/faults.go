package awstest

import (
	"net/http"
)

// Fault makes calls answer an error instead of being carried out. A call
// that meets a fault changes nothing; it is recorded among the Calls with
// the error. Faults meet calls after authentication, as AWS throttles and
// fails only requests it has accepted.
type Fault struct {
	Service   string // STS, S3, ECR, Beanstalk or Lambda; "" for every service
	Operation string // "UpdateEnvironment"; "" for every operation
	// Code is the AWS error code answered ("ResourceConflictException",
	// "AccessDeniedException"...), or Throttling or InternalError for the
	// service's own code for those.
	Code    string
	Message string
	// Status is the HTTP status answered; 0 takes the one AWS gives with
	// Code (400 for a code that is not Throttling or InternalError).
	Status int
	// Calls is how many calls the fault answers before it ends; 0 answers
	// every call until ClearFaults.
	Calls int
}

// Codes of Fault that stand for each service's own error.
const (
	// Throttling is ThrottlingException (ECR), TooManyRequestsException
	// (Lambda, 429 with Retry-After), Throttling (STS, Elastic Beanstalk)
	// or SlowDown (S3, 503). The SDK's retryer retries all of them.
	Throttling = "awstest:throttling"
	// InternalError is ServerException (ECR), ServiceException (Lambda),
	// InternalFailure (STS, Elastic Beanstalk) or InternalError (S3), with
	// status 500 unless Status says another 5xx.
	InternalError = "awstest:internal-error"
)

// fault is an injected Fault with what remains of it.
type fault struct {
	Fault
	left int // calls left, when Calls was set
}

// Inject adds a fault. Faults apply in the order injected: a call meets
// the first one that matches it.
func (f *Fake) Inject(ft Fault) {
	f.tb.Helper()
	if ft.Code == "" {
		f.tb.Fatalf("awstest: Inject: a Fault needs a Code (or Throttling, InternalError): %+v", ft)
	}
	if ft.Calls < 0 || (ft.Status != 0 && (ft.Status < 400 || ft.Status > 599)) {
		f.tb.Fatalf("awstest: Inject: bad Calls or Status in %+v", ft)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{Fault: ft, left: ft.Calls})
}

// ClearFaults ends every fault.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// faultFor returns the error of the fault req meets, counting req against
// it, or nil.
func (f *Fake) faultFor(req *request) *apiError {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.faults {
		if (ft.Service != "" && ft.Service != req.service) || (ft.Operation != "" && ft.Operation != req.op) {
			continue
		}
		if ft.Calls > 0 {
			ft.left--
			if ft.left == 0 {
				f.faults = append(f.faults[:i:i], f.faults[i+1:]...)
			}
		}
		return faultError(req.service, ft.Fault)
	}
	return nil
}

// faultError is the answer of ft to a call of service.
func faultError(service string, ft Fault) *apiError {
	e := &apiError{status: ft.Status, code: ft.Code, message: ft.Message}
	switch ft.Code {
	case Throttling:
		switch service {
		case ECR:
			e.code, e.message = "ThrottlingException", "Rate exceeded"
			e.status = http.StatusBadRequest
		case Lambda:
			e.code, e.message = "TooManyRequestsException", "Rate exceeded"
			e.status, e.retryAfter = http.StatusTooManyRequests, 1
			e.fields = [][2]string{{"Reason", "CallerRateLimitExceeded"}}
		case S3:
			e.code, e.message = "SlowDown", "Please reduce your request rate."
			e.status = http.StatusServiceUnavailable
		default:
			e.code, e.message = "Throttling", "Rate exceeded"
			e.status = http.StatusBadRequest
		}
		if ft.Status != 0 {
			e.status = ft.Status
		}
	case InternalError:
		switch service {
		case ECR:
			e.code = "ServerException"
		case Lambda:
			e.code = "ServiceException"
		case S3:
			e.code, e.message = "InternalError", "We encountered an internal error. Please try again."
		default:
			e.code = "InternalFailure"
		}
		if e.message == "" {
			e.message = "An internal error occurred."
		}
		if e.status == 0 {
			e.status = http.StatusInternalServerError
		}
	default:
		if e.status == 0 {
			e.status = http.StatusBadRequest
		}
	}
	if ft.Message != "" {
		e.message = ft.Message
	}
	return e
}
