"""AWS IoT's own rules as jitr reads them: the policy evaluator and its variables, topic filters and rule SQL."""
