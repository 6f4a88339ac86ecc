"""One small abstract class per component kind. Interfaces never import implementations."""
