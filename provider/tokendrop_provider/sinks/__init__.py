"""Secret stores a token is delivered into. One writer per sink kind; boto3 and requests load only when used."""
