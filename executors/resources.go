package executors

// Resources are the limits a job's resource_class gives it.
type Resources struct {
	CPUs   float64 // clamped to the machine's CPU count
	Memory int64   // bytes
}

// DefaultResourceClasses follow CircleCI's docker resource classes; both
// executors map resource_class through them unless the operator gives
// others.
var DefaultResourceClasses = map[string]Resources{
	"small":    {CPUs: 1, Memory: 2 << 30},
	"medium":   {CPUs: 2, Memory: 4 << 30},
	"medium+":  {CPUs: 3, Memory: 6 << 30},
	"large":    {CPUs: 4, Memory: 8 << 30},
	"xlarge":   {CPUs: 8, Memory: 16 << 30},
	"2xlarge":  {CPUs: 16, Memory: 32 << 30},
	"2xlarge+": {CPUs: 20, Memory: 40 << 30},
}
