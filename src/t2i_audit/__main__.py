from t2i_audit.cli import main

main()
