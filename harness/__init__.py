"""flowgate's judging machinery: histories, checkers, simulated AWS, fault injection, drivers."""
